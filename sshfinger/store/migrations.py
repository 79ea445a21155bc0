"""
Versioned SQL schemas, as every SQL backend ships them: C{vN.sql} builds a new database, C{upgrade-to-vN.sql} brings
one from version N-1 to N (the magic-wormhole mailbox server's scheme).
"""

from __future__ import annotations

from importlib.resources import files


def schema_script(package: str, name: str) -> str:
    """
    Read one SQL script shipped in C{package}'s C{schema/} directory.

    @param name: the file name, such as C{"v1.sql"}.
    """
    return files(package).joinpath("schema").joinpath(name).read_text(encoding="utf-8")


def migration_scripts(package: str, version: int | None, target: int) -> list[tuple[int, str]]:
    """
    List the scripts that bring a database from C{version} (L{None}: empty) to C{target}, as (version reached,
    script) pairs: C{v1.sql}, then every C{upgrade-to-vN.sql}.
    """
    steps: list[tuple[int, str]] = []
    if version is None:
        steps.append((1, schema_script(package, "v1.sql")))
        version = 1
    for reached in range(version + 1, target + 1):
        steps.append((reached, schema_script(package, f"upgrade-to-v{reached}.sql")))
    return steps


__all__ = ["migration_scripts", "schema_script"]
