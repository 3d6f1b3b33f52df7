"""Django's SQLite backend, told how many parameters this SQLite really accepts in one statement.

Django assumes 999, the limit of SQLite before 3.32, so bulk inserts of access events split into several
statements and a list of 50 referrals would cost more queries than a list of 5. The library in use
reports its own limit (32,766 by default since 3.32).
"""

import sqlite3

from django.db.backends.sqlite3 import base, features
from django.utils.functional import cached_property


class DatabaseFeatures(features.DatabaseFeatures):
    @cached_property
    def max_query_params(self) -> int:
        self.connection.ensure_connection()
        return self.connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)


class DatabaseWrapper(base.DatabaseWrapper):
    features_class = DatabaseFeatures
