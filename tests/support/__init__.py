"""What several test modules share: files, registries, the Hub stand-in. No tests here."""
