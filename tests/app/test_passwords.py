"""argon2id password hashes: verified, refused, upgraded when the parameters grow."""

from __future__ import annotations

import doctest

import pytest
from argon2 import PasswordHasher

from brandstudio.app import access, passwords, queue
from brandstudio.app.passwords import MAX_LENGTH, hash_password, verify_password
from brandstudio.errors import AppError

#: cheap parameters, so the tests run fast; HASHER's defaults are used where that is the point
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PASSWORD = "correct horse battery 正确的马"


def test_a_hash_verifies_its_password_and_nothing_else():
    stored = hash_password(PASSWORD, hasher=FAST)
    assert stored.startswith("$argon2id$v=19$m=1024,t=1,p=1$") and PASSWORD not in stored
    assert stored != hash_password(PASSWORD, hasher=FAST)  # salted
    assert verify_password(stored, PASSWORD, hasher=FAST) == passwords.PasswordCheck(True, None)
    for wrong in (
        "correct horse battery 正确的",
        "Correct horse battery 正确的马",
        "",
        "x" * (MAX_LENGTH + 1),
    ):
        assert verify_password(stored, wrong, hasher=FAST).ok is False


def test_the_same_password_typed_in_another_unicode_form_matches():
    composed, decomposed = "café crème brûlée", "cafe\u0301 cre\u0300me bru\u0302le\u0301e"
    assert composed != decomposed
    assert verify_password(hash_password(composed, hasher=FAST), decomposed, hasher=FAST).ok
    fullwidth = "ＡＢＣ１２３４５６７８"  # an IME's full-width letters and digits are NFKC's plain ones
    assert verify_password(hash_password("ABC12345678", hasher=FAST), fullwidth, hasher=FAST).ok


def test_a_hash_made_with_weaker_parameters_is_replaced_on_sign_in():
    old = hash_password(PASSWORD, hasher=FAST)
    check = verify_password(old, PASSWORD)  # the default hasher: 64 MiB, 3 passes, 4 lanes
    assert check.ok and check.new_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert verify_password(check.new_hash, PASSWORD) == passwords.PasswordCheck(True, None)
    assert verify_password(old, "wrong password!", hasher=PasswordHasher()).new_hash is None


@pytest.mark.parametrize(
    "stored", [None, "", "$2b$12$bcrypt.hash.from.elsewhere", "$argon2id$v=19$m=1024,t=1,p=1$broken"]
)
def test_no_user_or_a_damaged_hash_matches_nothing(stored):
    assert verify_password(stored, PASSWORD, hasher=FAST) == passwords.PasswordCheck(False)


@pytest.mark.parametrize("password", ["short", " " * 3, "x" * (MAX_LENGTH + 1)])
def test_too_short_or_too_long_a_password_is_refused(password):
    with pytest.raises(AppError, match="a password must be 10 to 1024 characters") as err:
        hash_password(password, hasher=FAST)
    assert err.value.field == "password" and err.value.value is None  # the password is not kept in the error


@pytest.mark.parametrize("module", [access, passwords, queue], ids=lambda m: m.__name__)
def test_the_docstring_examples_run(module):
    assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0
