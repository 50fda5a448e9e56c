"""The one way sema_mm reports a bad configuration."""


def require(ok: bool, message: str) -> None:
    """Raise ``ValueError('SwitchEMAHook: ' + message)`` unless ``ok``.

    ``message`` says what is wrong and what to change in the config.
    """
    if not ok:
        raise ValueError(f'SwitchEMAHook: {message}')
