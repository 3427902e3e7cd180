"""The binding's exception for failures of the runtime or the compiler (bad inputs raise
TypeError / ValueError instead)."""


class ReinError(RuntimeError):
    pass
