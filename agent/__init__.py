"""The agent: LLM backends, planner, action schema, rule engine, sessions, explanations, CLI."""
