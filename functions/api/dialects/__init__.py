"""The public API dialects: how each imitated API shows our records, one module per dialect.

- `realm_style`: the Realm-style models and images API (model creation and listing, `/images/generate`,
  `/images/modify`, `/images/jobs/{id}`).
- `custom_models`: the custom-models API (models, training data, trainings, predictions).
- `scenario_style`: the Scenario-style model resource (`PUT /models/{id}` and its `{"model": ...}` view).
- `headshot`: the headshot API (portraits and their styles).

Each module holds its dialect's status vocabulary (a table from the internal status enums of events/states.py
to the dialect's words) and the functions that render records into its response bodies. Commands live in
functions/api/services; nothing here writes.
"""
