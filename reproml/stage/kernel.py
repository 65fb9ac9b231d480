"""One warm Jupyter kernel that executes a stage notebook once per datum, each time in a clean namespace.

The kernel is started once (papermill's own client machinery, `nbclient`), so the imports a notebook pays
for (numpy, PIL, matplotlib, TensorFlow) are paid by the first datum only. Before every datum `reset`
returns the kernel to what a fresh kernel looks like to a notebook:

- the user namespace, `In`/`Out` and the execution counter are cleared (`InteractiveShell.reset`), so
  execution counts in the executed notebook start at 1 as in a fresh kernel;
- modules of the project (anything imported from the project folder, `reproml` included) are dropped
  from `sys.modules`, so a module-level cache filled by datum 1 is gone: datum 2 re-imports them (cheap,
  their heavy third-party imports stay loaded);
- matplotlib's figures are closed and its rcParams restored to the warm-up snapshot; Keras' session
  (its layer-name counters) is cleared; `os.environ`, `sys.path`, the working folder and the warning
  filters are restored, then the datum's environment is applied.

Third-party modules keep their module state: that is the price of not re-importing them, and the reason
a datum whose notebook fails gets a fresh kernel (its state is suspect).
"""

import json

from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from papermill.log import logger

from reproml.errors import ReproError

ENGINE_NAME = "reproml-warm"

# Run once after the kernel starts: what `reset` restores before every datum. Kept in a module of its
# own in sys.modules because `reset` clears the user namespace.
_WARM_UP = """
import os, sys, types, warnings
_state = types.ModuleType("_reproml_warm")
try:
    import matplotlib.pyplot  # the notebooks' heaviest common import; its inline-backend rcParams too
    _state.rc = dict(sys.modules["matplotlib"].rcParams)
except ImportError:
    _state.rc = None
_state.environ, _state.path, _state.cwd = dict(os.environ), list(sys.path), os.getcwd()
_state.filters = list(warnings.filters)
sys.modules["_reproml_warm"] = _state
del _state
"""

_RESET = """
import os, sys, warnings
_state, _project = sys.modules["_reproml_warm"], {project!r}
if "matplotlib.pyplot" in sys.modules:
    sys.modules["matplotlib.pyplot"].close("all")
    dict.update(sys.modules["matplotlib"].rcParams, _state.rc)  # bypasses validation: these came from it
if "keras" in sys.modules:
    try:
        sys.modules["keras"].backend.clear_session()  # layer-name counters would differ from a fresh kernel
    except Exception:
        pass
for _name, _module in list(sys.modules.items()):
    _file = str(getattr(_module, "__file__", None) or "")
    if _file.startswith(_project) and "site-packages" not in _file:
        del sys.modules[_name]
os.environ.clear()
os.environ.update(_state.environ)
os.environ.update({env})
sys.path[:] = _state.path
os.chdir(_state.cwd)
warnings.filters[:] = _state.filters
warnings._filters_mutated()
get_ipython().reset(new_session=True)
__import__("gc").collect()
"""


class WarmKernel:
    """A started kernel that `execute` reuses datum after datum.

    Args:
        cwd: the kernel's working folder (the project root, as in unbatched mode).
        project: the project folder whose modules are re-imported for every datum.
        kernel_name: the Jupyter kernel to start.
    """

    def __init__(self, cwd: str, project: str, kernel_name: str = "python3"):
        self.cwd, self.project, self.kernel_name = cwd, project, kernel_name
        self.km = self.kc = None
        self.start()

    def start(self) -> None:
        """Start the kernel and take the snapshot `reset` restores."""
        import nbformat
        from nbclient import NotebookClient

        client = NotebookClient(nbformat.v4.new_notebook(), kernel_name=self.kernel_name, startup_timeout=120)
        client.km = client.create_kernel_manager()
        client.start_new_kernel(cwd=self.cwd)
        client.start_new_kernel_client()
        self.km, self.kc = client.km, client.kc
        self.run(_WARM_UP, "warm-up")

    def run(self, code: str, what: str) -> None:
        """Execute housekeeping code outside the notebook's history; its errors are the runner's errors."""
        from nbclient.util import run_sync

        reply = run_sync(self.kc.execute_interactive)(code, store_history=False, timeout=120,
                                                      output_hook=lambda msg: None)
        if reply["content"]["status"] != "ok":
            content = reply["content"]
            raise ReproError(f"the warm kernel's {what} failed: {content.get('ename')}: {content.get('evalue')}",
                             "this is a bug of reproml.stage.kernel; run the stage without --batch meanwhile")

    def reset(self, env: dict[str, str]) -> None:
        """Return the kernel to a fresh kernel's state, with `env` added to its environment."""
        self.run(_RESET.format(project=self.project, env=json.dumps(env)), "reset")

    def restart(self) -> None:
        """A new kernel process: after a failed datum, nothing of its state may reach the next one."""
        self.shutdown()
        self.start()

    def shutdown(self) -> None:
        from nbclient.util import run_sync

        if self.kc is not None:
            self.kc.stop_channels()
        if self.km is not None and run_sync(self.km.is_alive)():
            run_sync(self.km.shutdown_kernel)(now=True)
        self.km = self.kc = None


class WarmEngine(NBClientEngine):
    """papermill's nbclient engine, executing in a `WarmKernel` (passed as `warm=`) it neither starts nor stops."""

    @classmethod
    def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None, stderr_file=None,
                                 start_timeout=60, execution_timeout=None, warm: WarmKernel | None = None,
                                 **kwargs):
        if warm is None:
            raise ReproError(f"papermill engine {ENGINE_NAME!r} needs a warm kernel (warm=WarmKernel(...))",
                             "reproml.stage.batch passes it; use the default engine otherwise")
        for name in ("input_path", "timeout", "startup_timeout"):
            kwargs.pop(name, None)
        client = PapermillNotebookClient(nb_man, km=warm.km, timeout=execution_timeout, startup_timeout=start_timeout,
                                         kernel_name=kernel_name, log=logger,
                                         log_output=log_output, stdout_file=stdout_file, stderr_file=stderr_file,
                                         **kwargs)
        client.kc = warm.kc  # with a kernel client given and km not owned, nbclient leaves both running
        return client.execute()


def register() -> None:
    """Make `engine_name=ENGINE_NAME` known to papermill (idempotent)."""
    papermill_engines.register(ENGINE_NAME, WarmEngine)
