"""The legacy per-LLM script of the gemini agent (needs the network: fails here)."""

import sys

sys.exit("gemini needs the network: not in this example")
