"""Case management: clues (线索) from findings and complaints through the national procedure to closure,
rectification (整改) follow-up, and what audit outcomes teach the targeting."""
