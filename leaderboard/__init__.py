"""The leaderboard: results aggregated into one table (aggregate.py); app and Hub sync to come."""
