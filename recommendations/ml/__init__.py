"""Model code (torch, sentence-transformers). Imported only by workers and commands, never by views."""
