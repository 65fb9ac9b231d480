"""The few lines every stage notebook would otherwise repeat: checking required inputs, making the output."""

from pathlib import Path


def require(**values: str) -> None:
    """Stop with a message that says how to supply them when required path parameters are empty.

    Args:
        values: parameter name -> value, e.g. `require(data_dir=data_dir, output_dir=output_dir)`.

    Raises:
        ValueError: naming every empty parameter.
    """
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise ValueError(
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} required: in a pipeline the stage "
            "runner sets them from the spec's --in arguments (python -m reproml.stage NOTEBOOK --in "
            "NAME=INPUT); by hand, pass them as parameters (-p NAME PATH)")


def output_folder(output_dir: str) -> Path:
    """The output folder, created if missing."""
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
