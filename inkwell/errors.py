"""The one error type users see: a message that says what was wrong, where, and what to do."""


class InkwellError(Exception):
    """A problem with the user's input or set-up. The CLI prints it without a traceback and exits 2;
    the server turns it into a 4xx JSON body."""

    def __init__(self, message: str, *, field: str | None = None, hint: str | None = None):
        self.field = field
        self.hint = hint
        text = message
        if hint:
            text = f"{message}\n  fix: {hint}"
        super().__init__(text)
