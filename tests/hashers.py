"""A password hasher for the test session: PBKDF2 with the same algorithm name and one round.

The production hasher's million rounds cost about 0.25 s of CPU per password, and most tests create two
or three named users. The hash keeps its iteration count in its text (``pbkdf2_sha256$1$...``), so a
process started with the production settings (a web server a test starts) still verifies it; it only
upgrades it on the first login, as it would any older hash.
"""

from __future__ import annotations

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class OneRoundPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    iterations = 1
