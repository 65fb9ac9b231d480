"""Pipeline specs, the DAG they form, their datums, and the local engine that runs them."""
