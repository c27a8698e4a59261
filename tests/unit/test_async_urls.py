"""The API's asyncio engines reach the database the URL names, with the TLS it asks for."""

import ssl

import certifi

from agentq.core.db import _async_url


def test_sqlite_goes_through_aiosqlite_and_mysql_through_asyncmy() -> None:
    sqlite, sqlite_args = _async_url("sqlite:////tmp/agentq.db")
    mysql, mysql_args = _async_url("mysql+pymysql://u:p@db:3306/agentq?charset=utf8mb4")

    assert (sqlite.drivername, sqlite.database, sqlite_args) == ("sqlite+aiosqlite", "/tmp/agentq.db", {})
    assert (mysql.drivername, mysql.host, mysql.database, mysql_args) == ("mysql+asyncmy", "db", "agentq", {})
    assert dict(mysql.query) == {"charset": "utf8mb4"}


def test_pymysqls_tls_options_become_the_context_asyncmy_takes() -> None:
    verified, verified_args = _async_url(f"mariadb+pymysql://u@db/agentq?ssl_ca={certifi.where()}")
    unverified, unverified_args = _async_url(
        f"mysql://u@db/agentq?ssl_ca={certifi.where()}&ssl_verify_cert=false"
    )

    assert verified.drivername == "mariadb+asyncmy"
    assert dict(verified.query) == {} == dict(unverified.query)  # asyncmy takes no ssl_* option
    assert isinstance(verified_args["ssl"], ssl.SSLContext)
    assert (verified_args["ssl"].verify_mode, verified_args["ssl"].check_hostname) == (
        ssl.CERT_REQUIRED,
        True,
    )
    assert (unverified_args["ssl"].verify_mode, unverified_args["ssl"].check_hostname) == (
        ssl.CERT_NONE,
        False,
    )
