# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.cloudpatterns.mysql.plugins.filter.ndb_mgm import (
    FilterModule,
    ndb_config_ini,
    ndb_mgm_show,
    ndb_mgm_status,
    ndb_unready,
)
from ansible_collections.cloudpatterns.mysql.plugins.filter.ndb_node_ids import ndb_node_ids

NODE_IDS = ndb_node_ids(
    {
        "mgmd": ["manager"],
        "ndbd": ["worker1", "worker2", "worker3"],
        "mysqld": ["manager", "worker1", "worker2", "worker3"],
    },
    replicas=3,
)

# The layout of ndb_mgm 8.x: tab after the id, two spaces before the details.
ALL_CONNECTED = """\
Connected to Management Server at: 10.0.0.2:1186
Cluster Configuration
---------------------
[ndbd(NDB)]\t3 node(s)
id=1\t@10.0.0.3  (mysql-8.4.3 ndb-8.4.3, Nodegroup: 0, *)
id=2\t@10.0.0.4  (mysql-8.4.3 ndb-8.4.3, Nodegroup: 0)
id=3\t@10.0.0.5  (mysql-8.4.3 ndb-8.4.3, Nodegroup: 0)

[ndb_mgmd(MGM)]\t1 node(s)
id=145\t@10.0.0.2  (mysql-8.4.3 ndb-8.4.3)

[mysqld(API)]\t5 node(s)
id=146\t@10.0.0.2  (mysql-8.4.3 ndb-8.4.3)
id=147\t@10.0.0.3  (mysql-8.4.3 ndb-8.4.3)
id=148\t@10.0.0.4  (mysql-8.4.3 ndb-8.4.3)
id=149\t@10.0.0.5  (mysql-8.4.3 ndb-8.4.3)
id=255 (not connected, accepting connect from 10.0.0.2)
"""

STARTING = """\
Connected to Management Server at: 10.0.0.2:1186 (using cleartext)
Cluster Configuration
---------------------
[ndbd(NDB)]     3 node(s)
id=1    @10.0.0.3  (mysql-8.4.3 ndb-8.4.3, starting, Nodegroup: 0)
id=2    @10.0.0.4  (mysql-8.4.3 ndb-8.4.3, Nodegroup: 0, *)
id=3 (not connected, accepting connect from 10.0.0.5)

[ndb_mgmd(MGM)] 1 node(s)
id=145  @10.0.0.2  (mysql-8.4.3 ndb-8.4.3)

[mysqld(API)]   4 node(s)
id=146 (not connected, accepting connect from 10.0.0.2)
id=147  @10.0.0.3  (mysql-8.4.3 ndb-8.4.3)
id=148  @10.0.0.4  (mysql-8.4.3 ndb-8.4.3)
id=149 (not connected, accepting connect from any host)
"""

# The older "Version:" form of the details.
OLD_FORMAT = """\
[ndbd(NDB)]     1 node(s)
id=2    @198.51.100.30  (Version: 8.0.35-ndb-8.0.35, no nodegroup)
[ndb_mgmd(MGM)] 1 node(s)
id=1    @198.51.100.10  (Version: 8.0.35-ndb-8.0.35)
"""


def test_show_parses_every_slot_in_order() -> None:
    nodes = ndb_mgm_show(ALL_CONNECTED)
    assert [(node["type"], node["node_id"]) for node in nodes] == [
        ("ndbd", 1),
        ("ndbd", 2),
        ("ndbd", 3),
        ("mgmd", 145),
        ("mysqld", 146),
        ("mysqld", 147),
        ("mysqld", 148),
        ("mysqld", 149),
        ("mysqld", 255),
    ]
    assert nodes[0] == {
        "type": "ndbd",
        "node_id": 1,
        "connected": True,
        "address": "10.0.0.3",
        "state": "started",
        "nodegroup": 0,
        "master": True,
    }
    assert nodes[3]["state"] == "connected"
    assert nodes[-1] == {
        "type": "mysqld",
        "node_id": 255,
        "connected": False,
        "address": None,
        "state": "not connected",
        "nodegroup": None,
        "master": False,
    }


def test_show_reads_states_of_a_starting_cluster() -> None:
    nodes = {node["node_id"]: node for node in ndb_mgm_show(STARTING)}
    assert nodes[1]["state"] == "starting"
    assert nodes[2]["state"] == "started" and nodes[2]["master"]
    assert not nodes[3]["connected"]
    assert not nodes[146]["connected"] and nodes[147]["connected"]


def test_show_reads_the_older_version_field() -> None:
    nodes = ndb_mgm_show(OLD_FORMAT)
    assert nodes[0]["state"] == "started" and nodes[0]["nodegroup"] is None
    assert nodes[1]["type"] == "mgmd" and nodes[1]["address"] == "198.51.100.10"


def test_unready_is_empty_when_every_node_is_connected() -> None:
    # The spare [api] slot 255 is not one of the filter's nodes, so its absence does not count.
    assert ndb_unready(ndb_mgm_show(ALL_CONNECTED), NODE_IDS) == []


def test_unready_names_each_node_that_is_not_ready() -> None:
    assert ndb_unready(ndb_mgm_show(STARTING), NODE_IDS) == [
        "data node 1 (worker1) is starting, not started",
        "data node 3 (worker3) is not connected",
        "SQL node 146 (manager) is not connected",
        "SQL node 149 (worker3) is not connected",
    ]


def test_unready_reports_a_node_the_server_does_not_know() -> None:
    shown = ndb_mgm_show(ALL_CONNECTED)
    ids = {**NODE_IDS, "mysqld": [*NODE_IDS["mysqld"], {"host": "worker4", "node_id": 150}]}
    assert ndb_unready(shown, ids) == [
        "SQL node 150 (worker4) is not in the management server's configuration"
    ]


@pytest.mark.parametrize(
    ("line", "state"),
    [
        ("Node 2: started (mysql-8.4.3 ndb-8.4.3)", "started"),
        ("Node 2: Started (version 8.0.35)", "started"),
        ("Node 2: starting (Last completed phase 4) (mysql-8.4.3 ndb-8.4.3)", "starting"),
        ("Node 2: not connected", "not connected"),
        ("Node 2: shutting down (mysql-8.4.3 ndb-8.4.3)", "shutting down"),
    ],
)
def test_status_reads_the_state(line: str, state: str) -> None:
    output = f"Connected to Management Server at: 10.0.0.2:1186\n{line}\n"
    assert ndb_mgm_status(output) == {2: state}


def test_status_keeps_the_last_line_of_each_node() -> None:
    output = (
        "Node 2: starting (Last completed phase 3) (mysql-8.4.3 ndb-8.4.3)\n"
        "Node 3: starting (Last completed phase 3) (mysql-8.4.3 ndb-8.4.3)\n"
        "Node 2: started (mysql-8.4.3 ndb-8.4.3)\n"
    )
    assert ndb_mgm_status(output) == {2: "started", 3: "starting"}


CONFIG_INI = """\
#
# Ansible managed
#
[ndbd default]
NoOfReplicas=3
DataMemory = 96M

[ndb_mgmd]
NodeId=145
HostName=10.0.0.2

; a comment
[ndbd]
NodeId=1
HostName=10.0.0.3
[ndbd]
NodeId=2
HostName=10.0.0.4
"""


def test_config_ini_keeps_repeated_sections_in_order() -> None:
    assert ndb_config_ini(CONFIG_INI) == [
        {"section": "ndbd default", "params": {"NoOfReplicas": "3", "DataMemory": "96M"}},
        {"section": "ndb_mgmd", "params": {"NodeId": "145", "HostName": "10.0.0.2"}},
        {"section": "ndbd", "params": {"NodeId": "1", "HostName": "10.0.0.3"}},
        {"section": "ndbd", "params": {"NodeId": "2", "HostName": "10.0.0.4"}},
    ]


@pytest.mark.parametrize(
    ("function", "value", "message"),
    [
        (ndb_mgm_show, None, "expects the command's output as a string"),
        (ndb_mgm_show, "Unable to connect with connect string", "no node in ndb_mgm's output"),
        (ndb_mgm_show, "[weird(X)]\t1 node(s)\nid=1 @a (v)\n", "unknown section"),
        (ndb_mgm_show, "id=1 @a (v)\n", "comes before any [section] header"),
        (ndb_mgm_status, "Unable to connect", "no 'Node N: state' line"),
        (ndb_config_ini, "NodeId=1\n", "before any [section]"),
        (ndb_config_ini, "[ndbd]\nthis is not a parameter\n", "line 2 of config.ini"),
    ],
)
def test_bad_input_fails_with_a_message(function, value, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=message.replace("[", r"\[").replace("(", r"\(")):
        function(value)


def test_unready_rejects_input_that_is_not_parsed() -> None:
    with pytest.raises(AnsibleFilterError, match="output of ndb_mgm_show"):
        ndb_unready("id=1", NODE_IDS)
    with pytest.raises(AnsibleFilterError, match="output of cloudpatterns.mysql.ndb_node_ids"):
        ndb_unready([], ["manager"])


def test_filters_are_registered() -> None:
    assert set(FilterModule().filters()) == {"ndb_mgm_show", "ndb_mgm_status", "ndb_unready", "ndb_config_ini"}
