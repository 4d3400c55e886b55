"""Automatic sorting: every document typed, given its correspondents and tags, filed, and its key
fields extracted, learned per tenant.

* :mod:`sorting.vocabulary`: what a tenant sorts into (document types and the collection each
  files into, correspondents with their identifiers, tags, typed custom fields), each entry with
  its matching rules and a "never assign automatically" switch;
* :mod:`sorting.rules`: Paperless-ngx's matching (any / all / exact / regex / fuzzy) on the text
  and the file name; a rule that matches takes precedence over every model;
* :mod:`sorting.fields`: typed fields read from the text (dates, parties, references, totals HT /
  TVA / TTC that add up, IBAN checked by mod 97, SIRET / SIREN by Luhn, VAT numbers, periods);
* :mod:`sorting.features` and :mod:`sorting.classifier`: the per-tenant type classifier (terms
  and the document's embedding; a zero-shot start from the types' names and descriptions;
  calibrated confidence);
* :mod:`sorting.llm`: a suggestion from an LLM constrained to the vocabulary (guided JSON);
* :mod:`sorting.service`: apply or ask (above the tenant's threshold labels are applied and the
  document filed, below it waits in the review queue), corrections that train, undo.

Other packages use :mod:`sorting.service` (and the field filters of :mod:`sorting.fields`).
"""
