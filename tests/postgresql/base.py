"""PostgreSQL for the test session: Django's backend, with tables emptied by DELETE instead of TRUNCATE.

pytest-django empties every table after each transactional test (``flush``). PostgreSQL's TRUNCATE gives
each table, index and TOAST table a new file, and a loaded machine spends seconds on those (measured: about
3 s for the 56 tables under load, against 0.02-0.04 s for deleting the few rows a test leaves). Foreign keys
are deferred (Django creates them ``DEFERRABLE INITIALLY DEFERRED``) and the flush runs in one transaction,
so the order of the deletes does not matter. A table with a trigger of its own (the audit log refuses
DELETE) is still truncated, and so is everything when a flush resets sequences.
"""

from __future__ import annotations

from django.db.backends.postgresql import base, operations

TRIGGERED = "SELECT DISTINCT tgrelid::regclass::text FROM pg_trigger WHERE NOT tgisinternal"


class DatabaseOperations(operations.DatabaseOperations):
    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        if reset_sequences or not tables:
            return super().sql_flush(
                style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
            )
        with self.connection.cursor() as cursor:
            cursor.execute(TRIGGERED)
            triggered = {name.strip('"') for (name,) in cursor.fetchall()}
        truncated = [table for table in tables if table in triggered]
        sql = [f"{style.SQL_KEYWORD('SET CONSTRAINTS ALL DEFERRED')};"]
        sql += [
            f"{style.SQL_KEYWORD('DELETE FROM')} {style.SQL_FIELD(self.quote_name(table))};"
            for table in tables
            if table not in triggered
        ]
        if truncated:
            # CASCADE: whatever refers to them is being emptied too.
            names = ", ".join(style.SQL_FIELD(self.quote_name(table)) for table in truncated)
            sql.append(f"{style.SQL_KEYWORD('TRUNCATE')} {names} {style.SQL_KEYWORD('CASCADE')};")
        return sql


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
