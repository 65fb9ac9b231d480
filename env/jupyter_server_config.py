# JupyterLab's server config for reproml (`make lab`, and /etc/jupyter in the notebook image): the
# versioned store mounted in the file browser through jupyter-fs, as the `reproml://` fsspec filesystem
# (reproml/inspect/fs.py). No FUSE and no privileged pod: the server reads the store (or pachd) itself.
#   $REPROML_STORE  the local store folder (`make lab` sets the project's .reproml)
#   $REPROML_PACHD  HOST:PORT of pachd: read the cluster's repos instead (needs python-pachyderm)
# The mount is read-only: a save there is refused with a message saying to save a copy elsewhere.
# Its panel opens on the newest run's folder (evaluate/master, the other repos still listed above it),
# so the newest report is three clicks away: the panel's tab, then a double click on Report.ipynb.
import os

c = get_config()  # noqa: F821 (jupyter's config loader defines get_config)

# jupytext's server extension would wrap the MetaManager itself and trip over jupyter-fs's string
# timestamps; it wraps only the server's own folder here (root_manager_class below).
c.ServerApp.jpserver_extensions = {"jupyterfs.extension": True, "jupyterlab_jupytext": False}
c.ServerApp.contents_manager_class = "jupyterfs.metamanager.MetaManager"
# The server's own folder keeps jupytext's manager, so notebooks/*.py still open as notebooks.
c.JupyterFs.root_manager_class = "jupytext.TextFileContentsManager"
c.JupyterFs.allow_user_resources = True
c.JupyterFs.resources = [{
    "name": "reproml runs (pachd)" if os.environ.get("REPROML_PACHD") else "reproml runs",
    "url": "reproml://",
    "type": "fsspec",
    "auth": "none",
    "defaultWritable": False,
    "preferredDir": "evaluate/master",
}]
