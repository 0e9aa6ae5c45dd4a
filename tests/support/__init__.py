"""Helpers that tests import (not fixtures): ``http`` serves a test's own HTTP endpoint on this machine."""
