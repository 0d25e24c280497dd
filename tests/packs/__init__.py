"""Small, real job packs that tests load into the daemon."""
