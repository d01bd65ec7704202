"""HTTP concerns only: parse, authenticate, call the engine or the store, render."""
