"""Scraps in scrapbook's format, written without importing scrapbook into every kernel.

`scrapbook.glue` imports papermill and pandas (about 0.6 s per kernel, a third of a small datum's
cost). This writes the same display output, so `scrapbook.read_notebook(path).scraps` reads it back.
"""

import json

MIME = "application/scrapbook.scrap.json+json"


def _plain(value):
    """NumPy scalars and arrays as plain Python numbers and lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"a scrap must be JSON-serialisable; got {type(value).__name__}")


def payload(name: str, value) -> tuple[dict, dict]:
    """The display data and metadata of one scrap, as scrapbook 0.5 writes them with the json encoder."""
    data = json.loads(json.dumps(value, default=_plain))
    return ({MIME: {"name": name, "data": data, "encoder": "json", "version": 1}},
            {"scrapbook": {"name": name, "data": True, "display": False}})


def glue(name: str, value) -> None:
    """Record a JSON-serialisable value in the running notebook under `name` (like `scrapbook.glue`)."""
    from IPython.display import display

    data, metadata = payload(name, value)
    display(data, metadata=metadata, raw=True)
