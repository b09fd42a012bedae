# No services: decodes with a warning.
