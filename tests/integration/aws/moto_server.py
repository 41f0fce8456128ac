# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""moto's AWS emulator in a process of its own, for the AWS integration tests.

moto reads its settings (MOTO_AMIS_PATH above all) when it is first imported, and the unit tests import
moto with its default AMI catalogue in the pytest process: a separate process keeps the two apart. The
parent passes the settings in the environment. This prints the port it listens on (a free one, chosen by
the system), then serves until its standard input closes, which happens when the parent exits.
"""

from __future__ import annotations

import sys

from moto.server import ThreadedMotoServer


def main() -> None:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
