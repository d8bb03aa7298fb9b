"""The legacy per-LLM script of the gpt agent (needs the network: fails here)."""

import sys

sys.exit("gpt needs the network: not in this example")
