"""What the model server refuses before Seldon Core parses a request, always with a 4xx and a message.

Seldon Core 1.17 answers any exception it did not raise itself with a 500: a body that is a bare JSON
string, JSON nested deep enough to exhaust the parser, form fields that are not JSON, even werkzeug's own
404 and 405. This blueprint, which Seldon registers on its Flask app (the model's `model_error_handler`),
refuses those first, and bounds how long a client may take to send its body.
"""

from __future__ import annotations

from reproml.serving.payload import BadRequest, check_json, must_be_object, read_json

ACCEPTED_TYPES = ("application/json", "multipart/form-data", "application/x-www-form-urlencoded")
DEFAULT_BODY_TIMEOUT_S = 10.0  # a 4 MB body at 3.2 Mbit/s; a stalled client frees its thread after this


def request_guard(max_payload_bytes: int, body_timeout_s: float):
    """A Flask blueprint that refuses unreadable requests before Seldon parses them, with a 4xx.

    Seldon answers any exception it did not raise itself with a 500, even werkzeug's own 404 and 405:
    the blueprint's error handler, more specific than Seldon's, gives those their real status.

    Args:
        max_payload_bytes: larger bodies get 413.
        body_timeout_s: a body that stops arriving for this long gets 408 (gunicorn has no such limit).

    Returns:
        The blueprint, for the model's `model_error_handler`.
    """
    from flask import Blueprint, jsonify, request
    from seldon_core.flask_utils import SeldonMicroserviceException
    from werkzeug.exceptions import ClientDisconnected, HTTPException

    guard = Blueprint("reproml_request_guard", __name__)

    def refuse(error: BadRequest):
        raise SeldonMicroserviceException(str(error), status_code=error.status, reason="BAD_REQUEST")

    @guard.app_errorhandler(HTTPException)
    def http_error(error: HTTPException):
        info = (f"{request.method} {request.path}: {error.code} {error.name}; the server answers POST "
                "/api/v1.0/predictions, POST /api/v1.0/feedback, GET /health/status")
        response = jsonify({"status": {"code": -1, "info": info, "reason": "BAD_REQUEST", "status": 1}})
        response.status_code = error.code or 400
        return response

    @guard.before_app_request
    def check_request():
        if request.method != "POST":
            return None
        # gunicorn reads bodies with no time limit: a client that sent its headers and stops would hold
        # this thread for as long as it likes. The limit covers each wait for more bytes, not the whole body.
        connection = request.environ.get("gunicorn.socket")
        if connection is not None:
            connection.settimeout(body_timeout_s)
        try:
            _check_body()
        except (TimeoutError, ClientDisconnected):  # werkzeug reports a read that timed out as a disconnect
            refuse(BadRequest(f"the request body did not arrive: nothing came for {body_timeout_s:g} s",
                              "send the body right after the headers", status=408))
        return None

    def _check_body():
        length = request.content_length
        if length is None or length == 0:
            refuse(BadRequest("the request body is empty (no Content-Length)"))
        if length > max_payload_bytes:
            # Read and drop the body (up to a bound) so that the client sees the answer, not a reset socket.
            if length <= 16 * max_payload_bytes:
                request.stream.read()
            refuse(BadRequest(f"the request body is {length} bytes, more than the limit {max_payload_bytes}",
                              "send a smaller image (the model sees it resized anyway), or start the server "
                              "with a larger max_payload_bytes", status=413))
        if request.mimetype not in ACCEPTED_TYPES:
            refuse(BadRequest(f"Content-Type {request.mimetype or 'none'!r} is not accepted; send "
                              "application/json (or multipart/form-data with a binData file)", status=415))
        try:
            if request.mimetype == "application/json":
                check_json(request.get_data(cache=True), "the body")
                value = request.get_json(silent=True)  # parsed once here; Seldon reuses Flask's cache
                if value is None:
                    raise BadRequest("the body is not valid JSON")
                must_be_object(value, "the body")
            elif request.mimetype == "application/x-www-form-urlencoded":
                if "json" not in request.form:
                    raise BadRequest("a form-encoded request carries its SeldonMessage in a field named json")
                read_json(request.form["json"], "the form field json")
            else:  # multipart: Seldon parses every field but strData as JSON
                for key in request.form:
                    if key != "strData":
                        read_json(request.form[key], f"the form field {key}", object_only=False)
        except BadRequest as error:
            refuse(error)

    return guard
