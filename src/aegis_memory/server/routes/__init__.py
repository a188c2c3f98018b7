"""HTTP routes: thin — validate, call one service method, return its result."""
