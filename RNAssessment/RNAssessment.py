"""RNAssessment: radiation necrosis vs progression after stereotactic radiosurgery (3D Slicer scripted module).

GUI and glue only: the computations live in RNAssessmentLib (pure Python on numpy, SimpleITK, VTK, pydicom);
RNAssessmentLib.mrml_bridge converts between MRML nodes and the core's images.
"""
import logging
import os
from typing import Annotated

import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
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
    boundaries: vtkMRMLSegmentationNode
    dose: vtkMRMLScalarVolumeNode
    prescriptionGy: Annotated[float, WithinRange(0.1, 100.0)] = 20.0
    fractions: Annotated[int, WithinRange(1, 40)] = 1
    isodoseLevels: str = "20,15,12,10,5"


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
        slicer.app.processEvents()

    def onAutoFill(self) -> None:
        self.logic.autoFill(self._parameterNode)

    def onApplyButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Assessment failed."), waitCursor=True):
            result = self.logic.process(self._parameterNode)
            self.ui.statusLabel.text = _("Done: {count} output nodes in folder '{folder}'.").format(
                count=len(result["nodes"]), folder=result["folder_name"])


class RNAssessmentLogic(ScriptedLoadableModuleLogic):
    """Takes nodes and plain values; never touches the GUI and never modifies an input node."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.logCallback = None

    def getParameterNode(self):
        return RNAssessmentParameterNode(super().getParameterNode())

    def _log(self, message: str) -> None:
        (self.logCallback or logging.info)(message)

    def autoFill(self, parameterNode) -> None:
        """Volumes with dates (ordered), the SlicerRT dose volume, segmentations named like lesions/boundaries."""
        from RNAssessmentLib import mrml_bridge as mb
        from RNAssessmentLib.case import boundary_kind
        scene = slicer.mrmlScene
        doses = mb.dose_volumes(scene)
        if doses and not parameterNode.dose:
            parameterNode.dose = doses[0]
        vols = [n for n in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")
                if not mb.is_dose_volume(n) and n.GetClassName() == "vtkMRMLScalarVolumeNode"]
        dated = [(mb.acquisition_date(scene, n), n) for n in vols]
        if dated:
            dated.sort(key=lambda dn: (dn[0] is None, dn[0] or 0, dn[1].GetName()))
            parameterNode.timepoints = [n for _, n in dated]
        for seg in slicer.util.getNodesByClass("vtkMRMLSegmentationNode"):
            names = [seg.GetSegmentation().GetNthSegment(i).GetName()
                     for i in range(seg.GetSegmentation().GetNumberOfSegments())]
            if any(boundary_kind(n) for n in names):
                if not parameterNode.boundaries:
                    parameterNode.boundaries = seg
            elif not parameterNode.treatedLesion:
                parameterNode.treatedLesion = seg

    def process(self, parameterNode) -> dict:
        p = parameterNode
        return self.run(list(p.timepoints), p.treatedLesion, p.dose, p.prescriptionGy, p.fractions,
                        p.isodoseLevels, boundaries=p.boundaries)

    def run(self, timepointVolumes, treatedLesionSegmentation, doseVolume, prescriptionGy: float, fractions: int,
            isodoseLevels: str, boundaries=None, scene=None) -> dict:
        """Build the case from nodes, assess it with the core, and add the outputs under one new folder."""
        from RNAssessmentLib.slicer_case import assess_nodes
        return assess_nodes(scene or slicer.mrmlScene, timepointVolumes, treatedLesionSegmentation, doseVolume,
                            prescriptionGy, fractions, isodoseLevels, boundaries=boundaries, log_callback=self._log)


class RNAssessmentTest(ScriptedLoadableModuleTest):
    """In-Slicer test: a phantom case built in the scene, assessed by the logic, outputs asserted."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_phantom_case()

    def test_phantom_case(self):
        from RNAssessmentLib.slicer_case import load_phantom_into_scene
        self.delayDisplay("Building the tentorium teaching case")
        nodes = load_phantom_into_scene(slicer.mrmlScene, "tentorium_rn")
        logic = RNAssessmentLogic()
        result = logic.run(nodes["timepoints"], nodes["treated_lesion"], nodes["dose"], 20.0, 1, "20,15,12,10,5",
                           boundaries=nodes["boundaries"])
        models = [n for n in result["nodes"] if n.IsA("vtkMRMLModelNode")]
        self.assertEqual(len(models), 5)
        table = next(n for n in result["nodes"] if n.GetName().endswith("timepoints"))
        self.assertEqual(table.GetNumberOfRows(), 3)
        for node in nodes["timepoints"]:
            self.assertIsNone(node.GetAttribute("RNAssessment.Modified"))
        self.delayDisplay("Test passed")
