"""Unit-test setup: the shared ledger helpers' asserts are rewritten by pytest, as a test's are."""

import pytest

pytest.register_assert_rewrite("ledger_helpers")
