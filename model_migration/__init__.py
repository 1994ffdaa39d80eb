"""model-migration: durable workflows for GitLab's AI model migration and deprecation process."""
