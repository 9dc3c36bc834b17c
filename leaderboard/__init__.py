"""The leaderboard: results aggregated into one table (aggregate.py), the Streamlit app (app.py),
the results dataset on the Hub (hub_results.py) and the Docker Space that shows it (space.py)."""
