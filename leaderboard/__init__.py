"""The leaderboard: results aggregated into one table (aggregate.py), the tables of the Per task,
Robustness and Students tabs (family_tables.py, student_tables.py), the Streamlit app (app.py),
the results dataset on the Hub (hub_results.py) and the Docker Space that shows it (space.py)."""
