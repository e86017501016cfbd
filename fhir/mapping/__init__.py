"""Source formats → FHIR R4B resources, one pure module per source (`hl7v2`, ...)."""
