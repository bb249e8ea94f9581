"""De-identification of DICOM objects, after the DICOM standard (PS3.15 Annex E).

The **Basic Application Level Confidentiality Profile** (Table E.1-1) with two of its options:

* **Retain Longitudinal Temporal Information with Modified Dates** (E.3.6): every date (DA, and the date part of DT)
  is shifted by one offset per output, so that the SRS date becomes 2000-01-01 and intervals (days since SRS, the
  order of the studies) stay; times are emptied;
* **Clean Descriptors** (E.3.11): the series and study descriptions, protocol name and contrast agent are kept where
  they hold none of the patient's identifying values (they tell a reader what a series is), else emptied.

Per attribute: ``REMOVE`` (X), ``EMPTY`` (Z: kept, empty, where the attribute is required), the patient's name and
ID replaced by the pseudonym, every UID but the well-known ones (1.2.840.10008...) replaced by one derived from it and
a secret drawn for the run (consistent within one output, not reversible), private attributes removed, and
``PatientIdentityRemoved`` = YES with ``DeidentificationMethodCodeSequence`` naming the profile and its options
(DCM 113100, 113107, 113105) on every object. The README has the table of what is removed, replaced or kept.
"""
from __future__ import annotations

import datetime as _dt
import os

#: Attributes removed (Table E.1-1 action X, or X/Z/D where the objects this tool writes do not need them).
REMOVE = (
    "AcquisitionComments", "AcquisitionDeviceProcessingDescription", "ActualHumanPerformersSequence",
    "AdditionalPatientHistory", "AdmissionID", "AdmittingDiagnosesCodeSequence", "AdmittingDiagnosesDescription",
    "Allergies", "AuthorObserverSequence", "BranchOfService", "CassetteID", "CommentsOnThePerformedProcedureStep",
    "ConfidentialityConstraintOnPatientDataDescription", "ContentCreatorIdentificationCodeSequence",
    "ContributionDescription", "CountryOfResidence", "CurrentPatientLocation", "CustodialOrganizationSequence",
    "DataSetTrailingPadding", "DerivationDescription", "DetectorID", "DeviceSerialNumber", "DigitalSignaturesSequence",
    "DischargeDiagnosisDescription", "DistributionAddress", "DistributionName", "EthnicGroup", "GantryID",
    "GeneratorID", "HumanPerformerName", "HumanPerformerOrganization", "IconImageSequence", "IdentifyingComments",
    "ImageComments", "ImagePresentationComments", "ImagingServiceRequestComments", "InstitutionAddress",
    "InstitutionCodeSequence", "InstitutionName", "InstitutionalDepartmentName", "InsurancePlanIdentification",
    "IntendedRecipientsOfResultsIdentificationSequence", "InterpretationApproverSequence", "InterpretationAuthor",
    "InterpretationDiagnosisDescription", "InterpretationIDIssuer", "InterpretationRecorder", "InterpretationText",
    "InterpretationTranscriber", "IssuerOfAdmissionID", "IssuerOfPatientID", "IssuerOfPatientIDQualifiersSequence",
    "IssuerOfServiceEpisodeID", "MedicalAlerts", "MedicalRecordLocator", "MilitaryRank", "ModifiedImageDescription",
    "ModifyingDeviceID", "NameOfPhysiciansReadingStudy", "NamesOfIntendedRecipientsOfResults", "Occupation",
    "OperatorIdentificationSequence", "OrderCallbackPhoneNumber", "OrderEnteredBy",
    "OrderEntererLocation", "OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames",
    "ParticipantSequence", "PatientAddress", "PatientAge", "PatientBirthName", "PatientBirthTime", "PatientComments",
    "PatientInstitutionResidence", "PatientInsurancePlanCodeSequence", "PatientMotherBirthName",
    "PatientPrimaryLanguageCodeSequence", "PatientReligiousPreference", "PatientSexNeutered", "PatientSize",
    "PatientState", "PatientTelephoneNumbers", "PatientTransportArrangements", "PatientWeight", "PerformedLocation",
    "PerformedProcedureStepDescription", "PerformedProcedureStepID", "PerformingPhysicianIdentificationSequence",
    "PerformingPhysicianName", "PersonAddress", "PersonIdentificationCodeSequence", "PersonName",
    "PersonTelephoneNumbers", "PhysicianApprovingInterpretation", "PhysiciansOfRecord",
    "PhysiciansOfRecordIdentificationSequence", "PhysiciansReadingStudyIdentificationSequence", "PlateID",
    "PreMedication", "PregnancyStatus", "ReasonForTheImagingServiceRequest", "ReasonForStudy",
    "ReferencedPatientAliasSequence", "ReferencedPatientPhotoSequence", "ReferencedPatientSequence",
    "ReferringPhysicianAddress", "ReferringPhysicianIdentificationSequence", "ReferringPhysicianTelephoneNumbers",
    "RegionOfResidence", "RequestAttributesSequence", "RequestedContrastAgent", "RequestedProcedureComments",
    "RequestedProcedureDescription", "RequestedProcedureID", "RequestedProcedureLocation", "RequestingPhysician",
    "RequestingService", "ResponsibleOrganization", "ResponsiblePerson", "ResultsComments",
    "ResultsDistributionListSequence", "ResultsIDIssuer", "ScheduledHumanPerformersSequence",
    "ScheduledPatientInstitutionResidence", "ScheduledPerformingPhysicianIdentificationSequence",
    "ScheduledPerformingPhysicianName", "ScheduledProcedureStepDescription", "ScheduledProcedureStepLocation",
    "ServiceEpisodeDescription", "ServiceEpisodeID", "SmokingStatus", "SpecialNeeds", "StationName",
    "StudyComments", "TextComments", "TextString", "TopicAuthor", "TopicKeywords", "TopicSubject", "TopicTitle",
    "VerifyingObserverIdentificationCodeSequence", "VerifyingObserverName", "VerifyingObserverSequence",
    "VerifyingOrganization", "VisitComments",
)
#: Attributes kept empty (Table E.1-1 action Z): the modules of these objects require them (Type 2).
EMPTY = ("PatientBirthDate", "PatientSex", "ReferringPhysicianName", "AccessionNumber", "StudyID",
         "ContentCreatorName", "OperatorsName")
#: Descriptors kept when clean (Clean Descriptors Option), else emptied.
DESCRIPTORS = ("SeriesDescription", "StudyDescription", "ProtocolName", "ContrastBolusAgent", "BodyPartExamined",
               "DocumentTitle")
#: The SRS date becomes this day.
SRS_DATE = "20000101"
#: DCM codes of the profile and the options applied (PS3.16 CID 7050).
METHOD_CODES = (("113100", "Basic Application Confidentiality Profile"),
                ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
                ("113105", "Clean Descriptors Option"))
#: UIDs that name a class or a syntax, not an instance: kept.
KEEP_UIDS = {"SOPClassUID", "ReferencedSOPClassUID", "TransferSyntaxUID", "MediaStorageSOPClassUID",
             "ImplementationClassUID", "CodingSchemeUID", "ContextUID", "MappingResource"}


class Deidentifier:
    """De-identifies DICOM datasets in place for one output (see the module docstring): one pseudonym, one date
    offset, one UID secret. ``srs_date``: the real SRS date (the anchor of the date shift); ``phi``: the patient's
    identifying strings (a descriptor holding one is emptied)."""

    def __init__(self, pseudonym: str, srs_date, phi=()):
        self.pseudonym = pseudonym
        self.srs = srs_date
        self.secret = os.urandom(16).hex()
        self.phi = [str(v).lower() for v in phi if len(str(v)) >= 3]

    def uid(self, value: str) -> str:
        from pydicom.uid import generate_uid
        return generate_uid(entropy_srcs=[self.secret, str(value)])

    def date(self, value: str) -> str:
        """A DA value shifted by the output's offset ('' when it is no date or there is no SRS date)."""
        v = str(value or "")
        if len(v) < 8 or not v[:8].isdigit() or self.srs is None:
            return ""
        try:
            d = _dt.date(int(v[:4]), int(v[4:6]), int(v[6:8]))
        except ValueError:
            return ""
        return (_dt.date(2000, 1, 1) + (d - self.srs)).strftime("%Y%m%d")

    def shifted_today(self) -> str:
        """Today on the output's shifted calendar (the creation date of an object made now)."""
        return self.date(_dt.date.today().strftime("%Y%m%d"))

    def _clean(self, text: str) -> bool:
        low = str(text).lower()
        return not any(p in low for p in self.phi)

    def apply(self, ds) -> None:
        """De-identify one dataset in place."""
        ds.remove_private_tags()
        for key in REMOVE:
            if key in ds:
                delattr(ds, key)

        def visit(d, elem):
            if elem.keyword in REMOVE:
                return
            if elem.VR == "SQ":
                for item in elem.value:
                    for key in REMOVE:
                        if key in item:
                            delattr(item, key)
                    item.remove_private_tags()
            elif elem.VR == "UI" and elem.keyword not in KEEP_UIDS and elem.value:
                vals = list(elem.value) if elem.VM > 1 else [elem.value]
                new = [self.uid(v) if not str(v).startswith("1.2.840.10008.") else v for v in vals]
                elem.value = new if elem.VM > 1 else new[0]
            elif elem.VR == "DA" and elem.value:
                elem.value = self.date(elem.value)
            elif elem.VR == "DT" and elem.value:
                elem.value = self.date(str(elem.value)[:8])
            elif elem.VR == "TM" and elem.value:
                elem.value = ""
            elif elem.VR == "PN" and elem.value and elem.keyword not in ("PatientName",):
                elem.value = ""
        ds.walk(visit)
        for key in EMPTY:
            if key in ds:
                setattr(ds, key, "")
        for key in DESCRIPTORS:
            if key in ds and ds.get(key) and not self._clean(ds.get(key)):
                setattr(ds, key, "")
        ds.PatientName = f"{self.pseudonym}^"      # one family-name component, as PN expects
        ds.PatientID = self.pseudonym
        if hasattr(ds, "file_meta"):
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        _mark(ds)

    def copy_series(self, files: list[str], folder: str) -> list[str]:
        """De-identified copies of a series' files in ``folder`` (IM0001.dcm, ...)."""
        import pydicom
        os.makedirs(folder, exist_ok=True)
        out = []
        for n, f in enumerate(files, start=1):
            ds = pydicom.dcmread(f)
            self.apply(ds)
            path = os.path.join(folder, f"IM{n:04d}.dcm")
            ds.save_as(path, enforce_file_format=True)
            out.append(path)
        return out

    def finish(self, ds) -> None:
        """An object this tool made from de-identified references: its own creation dates (today) on the shifted
        calendar (its times, of the run, kept: some are required), the de-identification attributes as on the
        copies, and, as a safety net, the profile's attributes cleared (this tool's own equipment's excepted)."""
        today = self.shifted_today()
        for key in ("ContentDate", "InstanceCreationDate", "SeriesDate", "StructureSetDate"):
            if key in ds:
                value = str(ds.get(key) or "")
                setattr(ds, key, today if value == _dt.date.today().strftime("%Y%m%d") else value)
        for key in REMOVE:
            if key in ds and key != "DeviceSerialNumber":
                delattr(ds, key)
        for key in EMPTY:
            if key in ds:
                setattr(ds, key, "")
        _mark(ds)


def _mark(ds) -> None:
    """The de-identification attributes (SOP Common module) with the profile and options as codes."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    ds.PatientIdentityRemoved = "YES"
    ds.LongitudinalTemporalInformationModified = "MODIFIED"
    ds.DeidentificationMethod = f"PS3.15 E basic profile, dates shifted to SRS {SRS_DATE}"[:64]
    codes = Sequence()
    for value, meaning in METHOD_CODES:
        c = Dataset()
        c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = value, "DCM", meaning
        codes.append(c)
    ds.DeidentificationMethodCodeSequence = codes
