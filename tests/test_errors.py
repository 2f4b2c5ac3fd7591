"""Every error a user can cause is a LifelongError, so one ``except`` catches them all."""

import inspect

import pytest

from lifelong import errors
from lifelong.errors import ConfigError, LifelongError, SettingError

ERRORS = [c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__]


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
def test_each_is_a_lifelong_error_with_a_docstring_saying_when(cls: type) -> None:
    assert issubclass(cls, LifelongError) and (cls.__doc__ or "").strip()


def test_a_setting_error_names_its_option_and_is_caught_as_a_config_error() -> None:
    with pytest.raises(ConfigError, match="must be positive") as info:
        raise SettingError("poll_seconds", "poll_seconds must be positive")
    assert info.value.option == "poll_seconds"


def test_the_package_raises_them_from_its_public_api() -> None:
    from lifelong.strategies import tuned

    with pytest.raises(LifelongError):
        tuned("no-such-method")
    assert len(ERRORS) >= 10
