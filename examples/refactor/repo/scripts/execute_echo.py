"""The legacy per-LLM script of the echo agent: prints the prompt upper-cased."""

import sys

print(sys.argv[1].upper())
