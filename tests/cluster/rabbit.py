"""Three private RabbitMQ nodes on loopback, clustered, from the installed server (issue 14).

Each node has its own name (`cbs-t1@localhost`, …), AMQP and distribution ports, and its own
data, log, config and plugins files in one temporary folder, deleted at the end. The machine's
own node (`rabbit@localhost`, port 5672) and its data are never touched: nothing here reads
/etc/rabbitmq's files (each node is given its own) and every `rabbitmqctl` names its node.

The nodes share the machine's Erlang cookie (/var/lib/rabbitmq/.erlang.cookie), which is what
lets `rabbitmqctl` and the nodes reach each other: so a node runs as the `rabbitmq` user (when
we are root, through `setpriv`, which execs rather than forks, so the process we start *is* the
Erlang VM and a SIGKILL to it is a node crash, nothing in between).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # the Debian package's script itself, not /usr/sbin's
RABBITMQ_USER = "rabbitmq"
CTL_TIMEOUT_S = 30  # rabbitmqctl can hang on a node that is half up: always bounded
BOOT_TIMEOUT_S = 120  # a node on this shared 2-core machine boots in 10-30 s
OPEN_FILES = 20_000  # 1,024 (su's default) runs out once a few vhosts' quorum queues and streams exist
# The Erlang VM's schedulers spin while idle by default: three nodes on a shared 2-core machine
# would burn a core doing nothing.
ERL_ARGS = "+sbwt none +sbwtdcpu none +sbwtdio none"


def free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def rabbitmqctl(node: str, *args: str, timeout_s: float = CTL_TIMEOUT_S, check: bool = True) -> str:
    """`rabbitmqctl -n node …`, bounded by `timeout` (the CLI can hang on a half-up node)."""
    done = subprocess.run(
        ["timeout", str(int(timeout_s)), "rabbitmqctl", "-q", "-n", node, *args],
        capture_output=True, text=True, timeout=timeout_s + 10,
    )  # fmt: skip
    if check and done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl -n {node} {' '.join(args)}: rc={done.returncode} {done.stderr.strip()}")
    return done.stdout


def rabbitmq_queues(node: str, *args: str, timeout_s: float = CTL_TIMEOUT_S) -> str:
    done = subprocess.run(
        ["timeout", str(int(timeout_s)), "rabbitmq-queues", "-q", "-n", node, *args],
        capture_output=True, text=True, timeout=timeout_s + 10,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmq-queues -n {node} {' '.join(args)}: rc={done.returncode} {done.stderr.strip()}")
    return done.stdout


@dataclass
class Node:
    name: str  # cbs-t1@localhost
    amqp_port: int
    dist_port: int
    home: Path  # everything of this node: data, logs, config, pid file
    process: subprocess.Popen[bytes] | None = None

    @property
    def short(self) -> str:
        return self.name.split("@", 1)[0]

    def env(self) -> dict[str, str]:
        """What makes this node its own, and not the machine's (every path under `home`)."""
        home = self.home
        return {
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
            "RABBITMQ_LOG_BASE": str(home / "log"),
            "RABBITMQ_LOGS": str(home / "log" / f"{self.short}.log"),
            "RABBITMQ_PID_FILE": str(home / f"{self.short}.pid"),
            "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(home / "advanced.config"),  # absent: none
            "RABBITMQ_CONF_ENV_FILE": str(home / "rabbitmq-env.conf"),  # not /etc's (it names rabbit@localhost)
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),  # no management: no port of its own
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": ERL_ARGS,
            # The distribution listens on loopback only, as the machine's node does (and epmd, should
            # a node of ours be the one to start it).
            "ERL_FLAGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "HOME": pwd.getpwnam(RABBITMQ_USER).pw_dir,  # where the shared .erlang.cookie is
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "LANG": "C.UTF-8",
        }

    def prepare(self) -> None:
        for sub in ("mnesia", "log"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        (self.home / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}\n"
            # guest may connect from loopback only (the default); the tests connect as guest and
            # as the processes' own users.
            "loopback_users.guest = true\n"
            # Room for the test's messages whatever the machine's free memory is said to be.
            "vm_memory_high_watermark.relative = 0.2\n"
            "disk_free_limit.absolute = 50MB\n"
        )
        (self.home / "enabled_plugins").write_text("[].\n")
        (self.home / "rabbitmq-env.conf").write_text("")
        owner = pwd.getpwnam(RABBITMQ_USER)
        if os.geteuid() == 0:
            for path in (self.home, *self.home.rglob("*")):
                os.chown(path, owner.pw_uid, owner.pw_gid)

    def start(self) -> None:
        """Start the Erlang VM (returns at once; `wait_up` waits for it)."""
        assert self.process is None or self.process.poll() is not None, f"{self.name} runs already"
        for port in (self.amqp_port, self.dist_port):
            assert free(port), f"port {port} of {self.name} is taken: another cluster test is running?"
        command = f"ulimit -n {OPEN_FILES}; exec "
        if os.geteuid() == 0:
            command += f"setpriv --reuid={RABBITMQ_USER} --regid={RABBITMQ_USER} --init-groups {SERVER}"
        else:
            command += SERVER
        log = open(self.home / "log" / "console.log", "ab")  # noqa: SIM115 (the child keeps it)
        self.process = subprocess.Popen(
            ["sh", "-c", command], env=self.env(), cwd=self.home, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        log.close()

    def wait_up(self, timeout_s: float = BOOT_TIMEOUT_S) -> None:
        """Until the node takes AMQP connections (its listeners open last in boot), then until
        `await_startup` agrees."""
        deadline = time.monotonic() + timeout_s
        while free(self.amqp_port):
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}: {self.console_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not up in {timeout_s} s: {self.console_tail()}")
            time.sleep(0.5)
        rabbitmqctl(self.name, "await_startup", "--timeout", str(int(timeout_s)), timeout_s=timeout_s + 5)

    def kill(self) -> None:
        """SIGKILL: the node crashes (no goodbye to its peers, nothing flushed)."""
        assert self.process is not None and self.process.poll() is None, f"{self.name} is not running"
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """A clean stop if it answers, else a kill; never leaves the VM behind."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # RabbitMQ stops cleanly on SIGTERM
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def console_tail(self, chars: int = 2_000) -> str:
        texts = []
        for path in (self.home / "log" / "console.log", self.home / "log" / f"{self.short}.log"):
            if path.exists():
                texts.append(path.read_text(errors="replace")[-chars:])
        return "\n".join(texts)


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now, all different (held open together while chosen)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class RabbitCluster:
    """`size` nodes `<prefix>1@localhost`…, clustered with the first (see `start`). A run's own
    prefix and free ports let two runs on one machine each have their cluster."""

    size: int = 3
    prefix: str = "cbs-t"
    amqp_ports: list[int] = field(default_factory=list)  # default: free ones
    dist_ports: list[int] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    home: Path | None = None

    def start(self) -> None:
        """Every node up, and every node after the first joined to it."""
        if shutil.which("rabbitmqctl") is None or not Path(SERVER).exists():
            raise RuntimeError("RabbitMQ is not installed (scripts/prepare.sh installs it)")
        if os.geteuid() not in (0, pwd.getpwnam(RABBITMQ_USER).pw_uid):
            raise RuntimeError(f"the nodes need the shared Erlang cookie: run as root or {RABBITMQ_USER}")
        # Readable by the rabbitmq user, which runs the nodes.
        self.home = Path(tempfile.mkdtemp(prefix="cbs-rabbit-cluster-"))
        os.chmod(self.home, 0o755)
        ports = free_ports(2 * self.size)
        amqp_ports = self.amqp_ports or ports[: self.size]
        dist_ports = self.dist_ports or ports[self.size :]
        self.nodes = [
            Node(f"{self.prefix}{i}@localhost", amqp_ports[i - 1], dist_ports[i - 1], self.home / f"{self.prefix}{i}")
            for i in range(1, self.size + 1)
        ]
        for node in self.nodes:
            node.prepare()
            node.start()
        for node in self.nodes:
            node.wait_up()
        first = self.nodes[0]
        for node in self.nodes[1:]:
            rabbitmqctl(node.name, "stop_app")
            rabbitmqctl(node.name, "join_cluster", first.name)
            rabbitmqctl(node.name, "start_app")
            rabbitmqctl(node.name, "await_startup", "--timeout", str(BOOT_TIMEOUT_S), timeout_s=BOOT_TIMEOUT_S + 5)
        running = self.running_nodes(first.name)
        assert running == {n.name for n in self.nodes}, f"the cluster did not form: {running}"

    def stop(self) -> None:
        """Every node stopped (killed if it does not stop), and every file of theirs removed."""
        for node in self.nodes:
            try:
                node.stop()
            except Exception:  # noqa: BLE001 (the others must stop all the same)
                if node.process is not None and node.process.poll() is None:
                    os.killpg(node.process.pid, signal.SIGKILL)
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def running_nodes(self, via: str) -> set[str]:
        status = json.loads(rabbitmqctl(via, "cluster_status", "--formatter", "json"))
        return set(status.get("running_nodes", []))

    def wait_running(self, via: str, expected: set[str], timeout_s: float = BOOT_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while (running := self.running_nodes(via)) != expected:
            assert time.monotonic() < deadline, f"running nodes {running}, expected {expected}"
            time.sleep(1)

    def queues(self, via: str, vhost: str) -> list[dict[str, Any]]:
        """Every queue of `vhost`: name, type, messages, leader and members (quorum queues and streams)."""
        out = rabbitmqctl(via, "list_queues", "-p", vhost, "name", "type", "messages", "leader", "members", "online",
                          "--formatter", "json")  # fmt: skip
        return list(json.loads(out)) if out.strip() else []

    def urls(self) -> list[str]:
        return [f"127.0.0.1:{n.amqp_port}" for n in self.nodes]
