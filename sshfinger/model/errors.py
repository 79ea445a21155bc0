"""
Exceptions shared by the store, the services and the command-line tool.

Every message is one line meant for a person: the services show C{str(error)} to peers and users.
"""


class StoreError(Exception):
    """
    Base class of every error the user store reports.
    """


class NoSuchAccount(StoreError):
    """
    The named account does not exist.
    """

    def __init__(self, login: str) -> None:
        super().__init__(f"no such user: {login}")
        self.login = login


class AccountExists(StoreError):
    """
    An account with that login exists already.
    """

    def __init__(self, login: str) -> None:
        super().__init__(f"user exists already: {login}")
        self.login = login


class InvalidValue(StoreError, ValueError):
    """
    A login, field name or field value breaks the account rules.
    """


class StoreUnavailable(StoreError):
    """
    The store could not commit a change (read-only file, full disk, I/O error).

    Nothing was changed: the in-memory view still matches what is on disk.
    """
