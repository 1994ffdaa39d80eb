"""Debian packages only the tests need, installed with apt-get (as root); does nothing when they are there.

Run: ``python -m tests.install_tools``. nginx is the TLS-terminating gRPC proxy the secure-connection
tests put in front of the dev server; its packaged service is installed stopped (``model_migration/apt.py``).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from model_migration.apt import install
from model_migration.domain.errors import DomainError

#: Debian's nginx with the http_v2 and grpc modules the proxy needs.
NGINX_PACKAGE = "nginx"
INSTALL_TOOLS = "python -m tests.install_tools"
#: Where Debian puts the binary, for a PATH without /usr/sbin.
DEBIAN_NGINX = Path("/usr/sbin/nginx")


def find_nginx() -> Path | None:
    found = shutil.which("nginx")
    if found is not None:
        return Path(found)
    return DEBIAN_NGINX if DEBIAN_NGINX.is_file() else None


def main() -> int:
    found = find_nginx()
    if found is not None:
        print(f"nginx is already installed: {found}; nothing to do")
        return 0
    try:
        install(NGINX_PACKAGE, services=("nginx",))
    except DomainError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"nginx installed: {find_nginx()} (its system service stopped and disabled)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
