"""The store: the only package that speaks SQL (schema, migrations, queries, the delivery queue)."""
