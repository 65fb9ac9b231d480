"""reproml: reproducible, notebook-first ML pipelines that run locally and on Pachyderm."""

__version__ = "0.1.0"
