"""Backups and restores of the whole database (`make backup`, `make restore`, the beat job)."""

from core.backup.archive import BackupError, Manifest, list_backups, verify_archive
from core.backup.database import (
    BACKUP_JOB,
    create_backup,
    document_counts,
    register_backup_job,
    restore_backup,
)

__all__ = [
    "BACKUP_JOB",
    "BackupError",
    "Manifest",
    "create_backup",
    "document_counts",
    "list_backups",
    "register_backup_job",
    "restore_backup",
    "verify_archive",
]
