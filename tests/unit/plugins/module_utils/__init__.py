# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
# A package, so that tests here and in the sibling folder may share basenames (test_sysbench.py).
