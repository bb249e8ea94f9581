"""RNAssessment: radiation necrosis vs progression after stereotactic radiosurgery (3D Slicer scripted module).

GUI and glue only: the computations live in RNAssessmentLib (pure Python on numpy, SimpleITK, VTK, pydicom);
RNAssessmentLib.mrml.bridge converts between MRML nodes and the core's images.
"""
import logging
import os
import pathlib
import traceback
from typing import Annotated

import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin


class RNAssessment(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("RN Assessment")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Radiotherapy")]
        self.parent.dependencies = []
        self.parent.contributors = ["RNAssessment developers"]
        self.parent.helpText = _(
            "Decision support after stereotactic radiosurgery of brain metastases: shows the dose (isodose lines, "
            "dose to the lesion), new enhancement across anatomical boundaries (falx, tentorium, sulci, ventricles) "
            "and portions of a lesion that grew or regressed between timepoints. It reports measurements, "
            "never a diagnosis.")
        self.parent.acknowledgementText = _(
            "Built on 3D Slicer, SimpleITK, VTK and pydicom. The two imaging features follow a published case "
            "series on radiation necrosis after SRS (Cancer Imaging, 2022).")


@parameterNodeWrapper
class RNAssessmentParameterNode:
    """Inputs of one assessment. Timepoints are ordered by their acquisition date when they have one."""
    timepoints: list[vtkMRMLScalarVolumeNode]
    treatedLesion: vtkMRMLSegmentationNode
    treatedLesionSegment: str = ""
    boundaries: vtkMRMLSegmentationNode
    dose: vtkMRMLScalarVolumeNode
    prescriptionGy: Annotated[float, WithinRange(0.1, 100.0)] = 20.0
    fractions: Annotated[int, WithinRange(1, 40)] = 1
    isodoseLevels: str = "20,15,12,10,5"
    estimateMissingBoundaries: bool = True
    showBoundaries: bool = True
    minPortionMm3: Annotated[float, WithinRange(10.0, 2000.0)] = 50.0
    compareWithSrs: bool = True
    registerFollowups: bool = True
    reportDirectory: pathlib.Path
    deidentify: bool = False
    writePdf: bool = True


class RNAssessmentWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/RNAssessment.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = RNAssessmentLogic()
        self.logic.logCallback = self._log
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.autoFillButton.connect("clicked(bool)", self.onAutoFill)
        self.ui.findingsTable.connect("cellClicked(int,int)", self.onFindingClicked)
        self.ui.lesionsTable.connect("cellClicked(int,int)", self.onLesionClicked)
        self.ui.isodoseTable.connect("cellChanged(int,int)", self.onIsodoseCellChanged)
        self.ui.compareLayoutButton.connect("clicked(bool)", self.onCompareLayout)
        self.ui.writeReportButton.connect("clicked(bool)", self.onWriteReport)
        self.ui.writeDicomButton.connect("clicked(bool)", self.onWriteDicom)
        self.ui.progressBar.hide()
        self._result = None
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)
        self._result = None          # its nodes go with the scene
        self.ui.findingsTable.setRowCount(0)
        self.ui.lesionsTable.setRowCount(0)
        self._lesionRows = []
        self.ui.isodoseTable.setRowCount(0)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.timepoints:
            self.logic.autoFill(self._parameterNode)

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None) -> None:
        ready = bool(self._parameterNode and self._parameterNode.timepoints)
        self.ui.applyButton.enabled = ready
        self.ui.applyButton.toolTip = _("Run the assessment") if ready else _("Select at least one timepoint volume")

    def _log(self, message: str) -> None:
        self.ui.statusLabel.text = message
        if self.ui.progressBar.visible:
            # The core logs one line per step; advance the bar by step, not by time.
            self.ui.progressBar.value = min(self.ui.progressBar.value + 1, self.ui.progressBar.maximum - 1)
        slicer.app.processEvents()

    def onAutoFill(self) -> None:
        notes = self.logic.autoFill(self._parameterNode)
        # Every choice, and every study left for the user, in the status line (full list as its tooltip).
        self.ui.statusLabel.text = "; ".join(notes[-3:]) if notes else ""
        self.ui.statusLabel.toolTip = "\n".join(notes)

    def onApplyButton(self) -> None:
        import qt
        p = self._parameterNode
        # Steps the core reports: isodose, one per timepoint, brain/boundaries, registration and boundaries per
        # follow-up, change.
        n = len(p.timepoints)
        self.ui.progressBar.maximum = 4 + 3 * n
        self.ui.progressBar.value = 0
        self.ui.progressBar.show()
        # Bad input is the user's to fix: its message in the panel and a dialog, no traceback in the console. Anything
        # else is a bug: the same, with the traceback in the application log for the report.
        failure = None
        qt.QApplication.setOverrideCursor(qt.Qt.WaitCursor)
        try:
            self._result = self.logic.process(p)
        except ValueError as e:
            failure = (_("Not assessed: {error}").format(error=e),
                       _("The inputs cannot be assessed:\n{error}").format(error=e), None)
        except Exception as e:
            logging.exception("RNAssessment: internal error")
            failure = (_("Internal error ({kind}); details in the application log.").format(kind=type(e).__name__),
                       _("Internal error: {error}").format(error=e), traceback.format_exc())
        finally:
            qt.QApplication.restoreOverrideCursor()
            self.ui.progressBar.hide()
        if failure:
            self.ui.statusLabel.text = failure[0]
            slicer.util.errorDisplay(failure[1], detailedText=failure[2])
            return
        self._showResult(self._result)
        self.ui.statusLabel.text = _("Done: {count} output nodes in folder '{folder}'.").format(
            count=len(self._result["nodes"]), folder=self._result["folder_name"])

    def _showResult(self, result) -> None:
        """Fill the isodose and findings tables; boundary segmentations follow the 'show' checkbox."""
        import qt
        from RNAssessmentLib.output.palette import isodose_colours
        from RNAssessmentLib.analysis.findings import KIND_TITLES
        iso = result["assessment"].maps.isodose
        colours = isodose_colours([lv.level_gy for lv in iso],
                                  (result["assessment"].summary.get("dose") or {}).get("prescription_gy"))
        table = self.ui.isodoseTable
        table.blockSignals(True)
        table.setRowCount(len(iso))
        for row, (lv, model) in enumerate(zip(iso, result["isodose_models"])):
            pct = f"{lv.percent_of_prescription:.0f} %" if lv.percent_of_prescription else ""
            for col, text in enumerate((f"{lv.level_gy:g} Gy", pct, f"{lv.volume_cc:.2f}")):
                item = qt.QTableWidgetItem(text)
                item.setFlags(qt.Qt.ItemIsEnabled)
                if col == 0:
                    item.setForeground(qt.QColor(*[int(255 * c) for c in colours[lv.level_gy]]))
                table.setItem(row, col, item)
            show = qt.QTableWidgetItem()
            show.setFlags(qt.Qt.ItemIsEnabled | qt.Qt.ItemIsUserCheckable)
            show.setCheckState(qt.Qt.Checked)
            show.setData(qt.Qt.UserRole, model.GetID())
            table.setItem(row, 3, show)
        table.blockSignals(False)
        findings = result["assessment"].findings
        ft = self.ui.findingsTable
        ft.setRowCount(len(findings))
        for row, f in enumerate(findings):
            d = f.to_dict()
            values = (str(row + 1), KIND_TITLES.get(f.kind, f.kind), f.when(), d["favours"],
                      f.description or "")
            for col, text in enumerate(values):
                item = qt.QTableWidgetItem(text)
                item.setToolTip(f.description or "")
                ft.setItem(row, col, item)
        ft.resizeColumnsToContents()
        self._lesionRows = self.logic.lesionRows(result)
        lt = self.ui.lesionsTable
        lt.setRowCount(len(self._lesionRows))
        for row, les in enumerate(self._lesionRows):
            for col, text in enumerate((les["title"], les["location"], les["course"], les["findings"])):
                item = qt.QTableWidgetItem(text)
                item.setToolTip(_("Click to centre the slice views on {id} where it was last seen ({at}).").format(
                    id=les["id"], at=les["at"]))
                if col == 0:
                    item.setForeground(qt.QColor(les["colour"]))
                lt.setItem(row, col, item)
        lt.resizeColumnsToContents()
        for node in result["nodes"]:
            if node.IsA("vtkMRMLSegmentationNode") and "boundaries" in node.GetName() and node.GetDisplayNode():
                node.GetDisplayNode().SetVisibility(bool(self._parameterNode.showBoundaries))

    def onIsodoseCellChanged(self, row, col) -> None:
        import qt
        if col != 3:
            return
        item = self.ui.isodoseTable.item(row, col)
        node = slicer.mrmlScene.GetNodeByID(item.data(qt.Qt.UserRole))
        if node is not None and node.GetDisplayNode():
            node.GetDisplayNode().SetVisibility(item.checkState() == qt.Qt.Checked)

    def onFindingClicked(self, row, col) -> None:
        if not self._result:
            return
        f = self._result["assessment"].findings[row]
        self.logic.jumpToFinding(f)

    def onLesionClicked(self, row, col) -> None:
        rows = getattr(self, "_lesionRows", None) or []
        if 0 <= row < len(rows):
            self.logic.jumpToLesion(rows[row])

    def onCompareLayout(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not set up the compare layout."), waitCursor=True):
            self.logic.showCompareLayout(self._result, self._parameterNode)

    def onWriteReport(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Report failed."), waitCursor=True):
            if not self._result:
                raise ValueError(_("Run the assessment first."))
            out = str(self._parameterNode.reportDirectory or "")
            if not out or out == ".":
                raise ValueError(_("Choose a folder for the report."))
            paths = self.logic.writeReport(self._result, out, pdf=self._parameterNode.writePdf)
            msg = _("Report written: {path}").format(path=paths["report"])
            if paths.get("pdf_error"):
                msg += " — " + paths["pdf_error"]
            self.ui.statusLabel.text = msg
            import qt
            qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(paths["report"]))


    def onWriteDicom(self) -> None:
        """The report folder's DICOM: SEG per follow-up, isodose structure set, PDF and key images, written into
        <report folder>/dicom and added to Slicer's DICOM database (send them to PACS from the DICOM module)."""
        with slicer.util.tryWithErrorDisplay(_("DICOM output failed."), waitCursor=True):
            if not self._result:
                raise ValueError(_("Run the assessment first."))
            out = str(self._parameterNode.reportDirectory or "")
            if not out or out == ".":
                raise ValueError(_("Choose a folder for the report."))
            self.logic.writeReport(self._result, out, pdf=self._parameterNode.writePdf)
            files = self.logic.writeDicom(self._result, out, os.path.join(out, "dicom"))
            from DICOMLib import DICOMUtils
            DICOMUtils.importDicom(os.path.join(out, "dicom"))
            self.ui.statusLabel.text = _("{count} DICOM files written to {path} and added to the DICOM "
                                         "database.").format(count=len(files), path=os.path.join(out, "dicom"))


class RNAssessmentLogic(ScriptedLoadableModuleLogic):
    """Takes nodes and plain values; never touches the GUI and never modifies an input node."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.logCallback = None

    def getParameterNode(self):
        return RNAssessmentParameterNode(super().getParameterNode())

    def _log(self, message: str) -> None:
        (self.logCallback or logging.info)(message)

    def autoFill(self, parameterNode) -> list:
        """Per DICOM study the post-contrast T1 (as `rnassess import` chooses, with the DICOM database's
        attributes), ordered by date; the SlicerRT dose volume; segmentations named like lesions/boundaries.
        Returns notes saying what was chosen or left for the user, and why."""
        from RNAssessmentLib.mrml import bridge as mb
        fill = mb.auto_fill(slicer.mrmlScene, lookup=_dicom_database_lookup)
        if fill["dose"] and not parameterNode.dose:
            parameterNode.dose = fill["dose"]
        if fill["timepoints"]:
            parameterNode.timepoints = fill["timepoints"]
        if fill["boundaries"] and not parameterNode.boundaries:
            parameterNode.boundaries = fill["boundaries"]
        if fill["treated_lesion"] and not parameterNode.treatedLesion:
            parameterNode.treatedLesion = fill["treated_lesion"]
        for note in fill["notes"]:
            self._log(f"auto-fill: {note}")
        return fill["notes"]

    def process(self, parameterNode) -> dict:
        p = parameterNode
        return self.run(list(p.timepoints), p.treatedLesion, p.dose, p.prescriptionGy, p.fractions,
                        p.isodoseLevels, boundaries=p.boundaries, estimateBoundaries=p.estimateMissingBoundaries,
                        minPortionMm3=p.minPortionMm3, compareWithSrs=p.compareWithSrs, deidentify=p.deidentify,
                        registerFollowups=p.registerFollowups, treatedLesionSegment=p.treatedLesionSegment.strip())

    def run(self, timepointVolumes, treatedLesionSegmentation, doseVolume, prescriptionGy: float, fractions: int,
            isodoseLevels: str, boundaries=None, scene=None, estimateBoundaries: bool = True,
            minPortionMm3: float = 50.0, compareWithSrs: bool = True, deidentify: bool = False,
            registerFollowups: bool = False, treatedLesionSegment: str = "") -> dict:
        """Build the case from nodes, assess it with the core, and add the outputs under one new folder.
        Follow-ups under a linear transform node use it; the others are registered when ``registerFollowups``.
        Bad input (a node without image data, a 2D volume, a dose that does not fit its prescription, a missing
        segment, ...) raises ValueError with what is wrong and what to do; nothing in the scene is changed then."""
        from RNAssessmentLib.faces.slicer_case import assess_nodes
        return assess_nodes(scene or slicer.mrmlScene, timepointVolumes, treatedLesionSegmentation, doseVolume,
                            prescriptionGy, fractions, isodoseLevels, boundaries=boundaries, log_callback=self._log,
                            estimate_boundaries=estimateBoundaries, min_portion_mm3=minPortionMm3,
                            compare_with_srs=compareWithSrs, deidentify=deidentify, register=registerFollowups,
                            treated_lesion_segment=treatedLesionSegment or None)

    def jumpToFinding(self, finding, scene=None) -> None:
        """Centre every slice view on the finding (RAS centroid), zoomed to a few times its size."""
        from RNAssessmentLib.faces.review import finding_fov_mm
        from RNAssessmentLib.mrml import bridge as mb
        mb.focus_slices(scene or slicer.mrmlScene, finding.centroid_ras, finding_fov_mm(finding.volume_mm3))

    def lesionRows(self, result) -> list:
        """The lesion list (review.lesion_rows): each lesion's title, location, volumes and findings."""
        from RNAssessmentLib.faces.review import lesion_rows
        return lesion_rows([les.to_dict() for les in result["assessment"].lesions or []])

    def jumpToLesion(self, lesionRow, scene=None) -> None:
        """Centre every slice view on a lesion (a :meth:`lesionRows` row) where it was last seen."""
        from RNAssessmentLib.mrml import bridge as mb
        mb.focus_slices(scene or slicer.mrmlScene, lesionRow["centroid_ras"], lesionRow["fov_mm"])

    def showCompareLayout(self, result, parameterNode, scene=None) -> list:
        """Timepoints side by side in linked slice views, the dose over each; each view fills the findings of its
        own timepoint and outlines the others."""
        from RNAssessmentLib.mrml import bridge as mb
        vols = result["timepoint_volumes"] if result else list(parameterNode.timepoints)
        slices = mb.compare_layout(scene or slicer.mrmlScene, vols, foreground=parameterNode.dose)
        if result and result.get("findings") is not None:
            # Each view fills the findings of its own scan only (outlines elsewhere).
            from RNAssessmentLib.faces.slicer_case import fill_findings_by_timepoint
            fill_findings_by_timepoint(scene or slicer.mrmlScene, result["findings"],
                                       [tp.label for tp in result["case"].timepoints], slices)
        return slices

    def writeDicom(self, result, reportDirectory: str, dicomDirectory: str, scene=None) -> list:
        """DICOM outputs of a result whose report is in ``reportDirectory``; the timepoint volumes must have been
        loaded from DICOM (their files come from Slicer's DICOM database)."""
        from RNAssessmentLib.faces.slicer_case import write_dicom_for
        return write_dicom_for(scene or slicer.mrmlScene, result, reportDirectory, dicomDirectory,
                               _dicom_files_of_node, log_callback=self._log)

    def writeReport(self, result, outputDirectory: str, pdf: bool = True) -> dict:
        from RNAssessmentLib.faces.slicer_case import write_report_for
        return write_report_for(result, outputDirectory, pdf=pdf, log_callback=self._log)


#: DICOM keywords the auto-fill reads from Slicer's DICOM database, as the tags the database is asked for.
_DICOM_TAGS = {"ContrastBolusAgent": "0018,0010", "ContrastBolusIngredient": "0018,1048", "ImageType": "0008,0008",
               "MRAcquisitionType": "0018,0023", "SliceThickness": "0018,0050", "SeriesDescription": "0008,103e",
               "RepetitionTime": "0018,0080", "EchoTime": "0018,0081", "InversionTime": "0018,0082",
               "SpacingBetweenSlices": "0018,0088", "SequenceName": "0018,0024"}


def _dicom_files_of_node(node) -> list:
    """The files a volume was loaded from, by its DICOM.instanceUIDs in Slicer's DICOM database."""
    db = getattr(slicer, "dicomDatabase", None)
    uids = (node.GetAttribute("DICOM.instanceUIDs") or "").split() if node else []
    if db is None or not uids:
        return []
    return [f for f in (db.fileForInstance(u) for u in uids) if f]


def _dicom_database_lookup(node, keyword):
    """A header value of the node's first DICOM instance from Slicer's DICOM database ('' when unknown)."""
    uids = (node.GetAttribute("DICOM.instanceUIDs") or "").split()
    db = getattr(slicer, "dicomDatabase", None)
    if not uids or db is None or keyword not in _DICOM_TAGS:
        return ""
    return db.instanceValue(uids[0], _DICOM_TAGS[keyword]) or ""


class RNAssessmentTest(ScriptedLoadableModuleTest):
    """In-Slicer test: a phantom case built in the scene, assessed by the logic, outputs asserted."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_phantom_case()

    def test_phantom_case(self):
        from RNAssessmentLib.faces.slicer_case import load_phantom_into_scene
        self.delayDisplay("Building the tentorium teaching case")
        nodes = load_phantom_into_scene(slicer.mrmlScene, "tentorium_rn")
        logic = RNAssessmentLogic()
        result = logic.run(nodes["timepoints"], nodes["treated_lesion"], nodes["dose"], 20.0, 1, "20,15,12,10,5",
                           boundaries=nodes["boundaries"])
        models = [n for n in result["nodes"] if n.IsA("vtkMRMLModelNode")]
        self.assertEqual(len(models), 5)
        table = next(n for n in result["nodes"] if n.GetName().endswith("timepoints"))
        self.assertEqual(table.GetNumberOfRows(), 3)
        kinds = {(f.kind, f.timepoint, f.boundary) for f in result["assessment"].findings}
        self.assertIn(("noncontiguous_across_boundary", nodes["timepoints"][2].GetName(), "tentorium"), kinds)
        logic.jumpToFinding(result["assessment"].findings[0])
        lesions = logic.lesionRows(result)
        self.assertEqual(lesions[0]["id"], "L1")
        self.assertTrue(any(row["id"] != "L1" for row in lesions))   # the focus across the tentorium
        logic.jumpToLesion(lesions[-1])
        views = logic.showCompareLayout(result, logic.getParameterNode())
        self.assertEqual(len(views), 3)
        for node in nodes["timepoints"]:
            self.assertIsNone(node.GetAttribute("RNAssessment.Modified"))
        self.delayDisplay("Test passed")
