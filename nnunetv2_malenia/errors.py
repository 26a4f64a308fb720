"""Errors a user can act on. The CLI prints them as one line and exits with status 2."""


class MaleniaError(Exception):
    """A problem with the user's input; the message names the file, field or value and the fix."""


class TableError(MaleniaError):
    """A vocabulary, knowledge table or lesion-attribute file that does not follow the schema."""

    def __init__(self, file: object, problem: str, row: str | None = None, field: str | None = None):
        where = [str(file)]
        if row is not None:
            where.append(f"row {row!r}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{': '.join(where)}: {problem}")
        self.file, self.row, self.field, self.problem = str(file), row, field, problem
