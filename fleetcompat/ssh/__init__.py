"""SSH for the collector: connections, keys, host keys, bastions, the remote probe.

asyncssh is used in this package and nowhere else. One `Fleet` per run holds what
hosts share: the keys (files and the agent's, loaded once), the known_hosts table
(read once), ~/.ssh/config (parsed once) and the connections to bastions (one per
jump chain, shared by every host behind it). `Fleet.probe` runs one host under its
deadlines and turns every failure into an outcome with a reason.

Authentication is by keys first (files, then the agent's): an encrypted key file
with no agent holding it cannot be used, since a nightly run cannot prompt. A host
whose inventory gives a password (`ansible_password`, often vaulted) is then
offered it, once, by keyboard-interactive authentication (answering only prompts
that ask for a password; any other prompt, such as a one-time code, fails the
authentication with that prompt named) or by password authentication. Only that
host gets it, never a jump host, and only after its host key was verified. The
password is held as a `Secret` until the one call that sends it, and appears in
no message, log line or repr.

The package's modules: `fleet` (the run's shared state, one host's path through
it), `handshake` (host keys, authentication, failures as outcomes) and `session`
(the TCP connection and the probe's session).
"""

from fleetcompat.ssh.fleet import Fleet
from fleetcompat.ssh.handshake import Phase

__all__ = ["Fleet", "Phase"]
