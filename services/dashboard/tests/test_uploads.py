"""An uploaded table is private to the lab: 0600 in folders only the lab's user may enter, under the
uploading user's own prefix."""

from pathlib import Path

from airlab.settings import Settings
from airlab_dashboard.main import upload_saver


def test_an_upload_is_private_and_under_its_users_prefix(tmp_path):
    save = upload_saver(Settings(workspace=tmp_path / "ws"))
    saved = Path(save("ada", "../My Table!.csv", b"a,label\n1,0\n"))
    uploads = tmp_path / "ws" / "artifacts" / "uploads"
    assert saved.is_relative_to(uploads / "ada") and saved.name == "My_Table.csv"
    assert saved.read_bytes() == b"a,label\n1,0\n" and saved.stat().st_mode & 0o777 == 0o600
    folders = [uploads, *(p for p in uploads.rglob("*") if p.is_dir())]
    assert len(folders) == 3 and {p.stat().st_mode & 0o777 for p in folders} == {0o700}
