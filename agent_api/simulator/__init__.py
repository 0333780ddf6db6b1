"""The reference agent: a fleet of simulated clients speaking the agent protocol.

It talks to the server only over HTTP (docs/agent-protocol.md) and imports
nothing from Django but the notification signing helpers and the pattern
format, so it behaves like a separate program. Use it from the command line
(``manage.py simulate_agents``) or in-process::

    with FleetThread(server_url=live_server.url, enrollment_secret=..., count=10) as fleet:
        fleet.agents[0].client_id, fleet.agents[0].port
        fleet.call(fleet.agents[0].update, trigger="manual")
"""

from agent_api.simulator.agent import AgentSpec, SimAgent
from agent_api.simulator.fleet import Fleet, FleetThread

__all__ = ["AgentSpec", "Fleet", "FleetThread", "SimAgent"]
