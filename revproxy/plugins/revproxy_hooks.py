"""The built-in pipeline hooks, offered as ``IRequestHookFactory`` plugins.

None yet: the protection and firewall features add theirs here. Discovery imports this
module, so it stays light.
"""

from __future__ import annotations

BUILTINS = ()
