//! placeholder
use crate::SimConfig;
pub struct InProcessReport;
pub fn run_in_process(_c: &SimConfig) -> InProcessReport {
    InProcessReport
}
