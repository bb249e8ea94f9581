"""A PACS over DICOM networking (pynetdicom): C-STORE the outputs, C-FIND and C-GET a patient's studies.

Addresses are written ``AET@HOST:PORT`` (the PACS's application entity title, host and DICOM port). Our own
calling AE title is ``RNASSESS`` unless given. C-GET is used to retrieve (the PACS sends the instances back on the
same association), so no listening port is opened here and nothing needs configuring on the PACS for a move
destination.
"""
from __future__ import annotations

import dataclasses
import os
import re

CALLING_AET = "RNASSESS"

#: What a case is made of: MR (classic and enhanced), CT, RT dose/structure set/plan, spatial registration,
#: segmentation, secondary capture and encapsulated PDF.
RETRIEVED_CLASSES = ("1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.4.1", "1.2.840.10008.5.1.4.1.1.2",
                     "1.2.840.10008.5.1.4.1.1.481.2", "1.2.840.10008.5.1.4.1.1.481.3", "1.2.840.10008.5.1.4.1.1.481.5",
                     "1.2.840.10008.5.1.4.1.1.66.1", "1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.7",
                     "1.2.840.10008.5.1.4.1.1.104.1")


@dataclasses.dataclass(frozen=True)
class Address:
    aet: str
    host: str
    port: int

    def __str__(self):
        return f"{self.aet}@{self.host}:{self.port}"


def parse_address(text: str) -> Address:
    m = re.fullmatch(r"([^@\s]{1,16})@([^:\s]+):(\d{1,5})", text or "")
    if not m or not 0 < int(m.group(3)) < 65536:
        raise ValueError(f"PACS address '{text}': expected AET@HOST:PORT, e.g. ORTHANC@127.0.0.1:4242 (AE title of "
                         "at most 16 characters)")
    return Address(m.group(1), m.group(2), int(m.group(3)))


def _associate(ae, addr: Address, **kw):
    assoc = ae.associate(addr.host, addr.port, ae_title=addr.aet, **kw)
    if not assoc.is_established:
        raise ValueError(f"PACS {addr}: no association (refused, aborted or not listening; check the AE title, "
                         "host and port)")
    _no_delay(assoc)
    return assoc


def _no_delay(assoc) -> None:
    """Send each PDU at once (TCP_NODELAY). A DIMSE exchange is a few small writes answered by a small reply: with
    Nagle's algorithm on one side and delayed ACKs on the other every C-STORE waited for the 40 ms ACK timer, twice
    (90 ms per instance to a local Orthanc, 52 ms with this side's Nagle off, 7 ms with both sides'). pynetdicom
    has no option for it; its association keeps the connected socket at ``dul.socket.socket``. Only a speed-up:
    if that ever moves, the association works as before."""
    import socket
    sock = getattr(getattr(getattr(assoc, "dul", None), "socket", None), "socket", None)
    if isinstance(sock, socket.socket):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


#: How often an operation whose answer was lost is tried again, each time on a new association.
RETRIES = 1


class _NoAnswer(Exception):
    """The PACS's answer never reached us: the association timed out waiting for it."""


def _answered(status) -> bool:
    """pynetdicom gives an empty status when no answer came within its DIMSE timeout (the association is then
    aborted). Besides a slow or vanished PACS this happens on a healthy one: pynetdicom's own reactor thread can
    take the response off the queue before the waiting request sees it ("Received unexpected C-STORE service
    message", pynetdicom issue 875; seen storing to Orthanc on loopback under load)."""
    return status is not None and "Status" in status


def _with_retries(what: str, addr: Address, attempt):
    """``attempt()`` (one association), again on a new association when its answer was lost, at most RETRIES
    times; then a clear error. Every operation here can be repeated: a PACS keeps one copy of an instance stored
    twice, a query or retrieval asked twice gives the same."""
    for n in range(RETRIES + 1):
        try:
            return attempt()
        except _NoAnswer as e:
            if n == RETRIES:
                raise ValueError(f"PACS {addr}: no answer {what} ({e}; association lost, tried {RETRIES + 1} "
                                 "times)") from None


def store(files: list[str], addr: Address, *, calling_aet: str = CALLING_AET) -> int:
    """C-STORE every file; returns how many were stored. A refused or failed store is an error naming the file; a
    lost answer is sent again on a new association (see :func:`_with_retries`)."""
    import pydicom
    from pynetdicom import AE
    datasets = [(f, pydicom.dcmread(f)) for f in files]
    ae = AE(ae_title=calling_aet)
    for cls, ts in sorted({(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)) for _, ds in datasets}):
        ae.add_requested_context(cls, [ts])
    done = 0

    def attempt():
        nonlocal done
        assoc = _associate(ae, addr)
        try:
            for path, ds in datasets[done:]:
                status = assoc.send_c_store(ds)
                if not _answered(status):
                    raise _NoAnswer(f"storing '{path}'")
                if status.Status not in (0x0000, 0xB000, 0xB006, 0xB007):
                    raise ValueError(f"PACS {addr}: storing '{path}' failed with status 0x{status.Status:04X}")
                done += 1
        finally:
            assoc.release()
    _with_retries("while storing", addr, attempt)
    return done


def find(addr: Address, level: str, keys: dict, *, calling_aet: str = CALLING_AET) -> list[dict]:
    """C-FIND at ``level`` (PATIENT, STUDY, SERIES, IMAGE) with the Study Root model; returns the matches. A query
    whose answer was lost part-way is asked again whole (never a silently partial list)."""
    from pydicom.dataset import Dataset
    from pynetdicom import AE
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind
    ae = AE(ae_title=calling_aet)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    q = Dataset()
    q.QueryRetrieveLevel = level
    for k, v in keys.items():
        setattr(q, k, v)

    def attempt():
        assoc = _associate(ae, addr)
        out = []
        try:
            for status, ident in assoc.send_c_find(q, StudyRootQueryRetrieveInformationModelFind):
                if not _answered(status):
                    raise _NoAnswer(f"to the {level} query")
                if status.Status in (0xFF00, 0xFF01) and ident is not None:
                    out.append({k: str(ident.get(k, "")) for k in keys})
                elif status.Status not in (0x0000, 0xFF00, 0xFF01):
                    raise ValueError(f"PACS {addr}: C-FIND failed with status 0x{status.Status:04X}")
        finally:
            assoc.release()
        return out
    return _with_retries("to a query", addr, attempt)


def retrieve_patient(addr: Address, patient_id: str, dest: str, *, calling_aet: str = CALLING_AET) -> int:
    """C-GET every study of ``patient_id`` into ``dest`` (one file per instance, by study/series); returns the
    number of instances received."""
    from pydicom.dataset import Dataset
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
    from pynetdicom import AE, build_role, evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet
    studies = find(addr, "STUDY", {"PatientID": patient_id, "StudyInstanceUID": ""}, calling_aet=calling_aet)
    if not studies:
        raise ValueError(f"PACS {addr}: no study of patient '{patient_id}'")
    os.makedirs(dest, exist_ok=True)
    received = []

    def on_store(event):
        ds = event.dataset
        ds.file_meta = event.file_meta
        folder = os.path.join(dest, str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID))
        os.makedirs(folder, exist_ok=True)
        ds.save_as(os.path.join(folder, f"{ds.SOPInstanceUID}.dcm"), enforce_file_format=True)
        received.append(ds.SOPInstanceUID)
        return 0x0000

    ae = AE(ae_title=calling_aet)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    # C-GET returns the instances on this association: we are the storage SCP for the classes a case holds.
    roles = []
    for cls in RETRIEVED_CLASSES:
        ae.add_requested_context(cls, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        roles.append(build_role(cls, scp_role=True))

    def get_study(uid):
        q = Dataset()
        q.QueryRetrieveLevel = "STUDY"
        q.PatientID = patient_id
        q.StudyInstanceUID = uid
        assoc = _associate(ae, addr, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)])
        try:
            for status, _ in assoc.send_c_get(q, StudyRootQueryRetrieveInformationModelGet):
                if not _answered(status):
                    raise _NoAnswer(f"retrieving study {uid}")
                if status.Status not in (0x0000, 0xFF00, 0xB000):
                    raise ValueError(f"PACS {addr}: C-GET of study {uid} failed with status 0x{status.Status:04X}")
        finally:
            assoc.release()
    # One association per study: a study whose answer was lost is asked for again (its files are written again
    # under the same names; each instance is counted once).
    for st in studies:
        _with_retries("while retrieving", addr, lambda uid=st["StudyInstanceUID"]: get_study(uid))
    return len(set(received))
