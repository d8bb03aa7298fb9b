"""The legacy per-LLM script of the claude agent (needs the network: fails here)."""

import sys

sys.exit("claude needs the network: not in this example")
