//! The `taxi.query.v1.QueryService` API: identify the caller, parse the
//! request, run the read, convert the answer.

mod convert;

use std::sync::Arc;

use futures::StreamExt as _;
use svc_kit::identity::Caller;
use taxi_proto::query::v1::{
    CallView, GetCallViewRequest, GetCallViewResponse, GetDashboardRequest, GetDashboardResponse,
    ListMyCallsRequest, ListMyCallsResponse, WatchCallRequest, WatchCallResponse,
    query_service_server::QueryService,
};
use tonic::{Request, Response, Status};

use crate::{
    error::QueryError,
    service::{Reads, Watch},
};

/// A watch as the client receives it: each version, or the status that ended it.
pub type WatchCallStream =
    futures::stream::Map<Watch, fn(Result<CallView, QueryError>) -> Result<WatchCallResponse, Status>>;

/// The tonic implementation of `QueryService`.
pub struct QueryApi {
    reads: Arc<Reads>,
}

impl QueryApi {
    pub(crate) fn new(reads: Arc<Reads>) -> Self {
        Self { reads }
    }
}

#[tonic::async_trait]
impl QueryService for QueryApi {
    #[tracing::instrument(skip_all, fields(call_id = %request.get_ref().call_id))]
    async fn get_call_view(
        &self,
        request: Request<GetCallViewRequest>,
    ) -> Result<Response<GetCallViewResponse>, Status> {
        let caller = Caller::of(&request)?;
        let (call_id, min_version) = convert::get_call_view(request.get_ref())?;
        let view = self.reads.call_view(&caller, call_id, min_version).await?;
        Ok(Response::new(GetCallViewResponse { view: Some(view) }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_my_calls(
        &self,
        request: Request<ListMyCallsRequest>,
    ) -> Result<Response<ListMyCallsResponse>, Status> {
        let customer = Caller::of(&request)?.customer()?;
        let (size, after) = convert::list_my_calls(request.get_ref())?;
        let page = self
            .reads
            .my_calls(customer, after, size)
            .await?
            .ok_or_else(|| Status::from(convert::unknown_page_token()))?;
        Ok(Response::new(ListMyCallsResponse {
            calls: page.views,
            next_page_token: page.next_after.map(convert::page_token).unwrap_or_default(),
        }))
    }

    type WatchCallStream = WatchCallStream;

    #[tracing::instrument(skip_all, fields(call_id = %request.get_ref().call_id))]
    async fn watch_call(
        &self,
        request: Request<WatchCallRequest>,
    ) -> Result<Response<Self::WatchCallStream>, Status> {
        let caller = Caller::of(&request)?;
        let (call_id, from_version) = convert::watch_call(request.get_ref())?;
        let watch = self.reads.clone().watch(&caller, call_id, from_version).await?;
        Ok(Response::new(watch.map(convert::watched as fn(_) -> _)))
    }

    #[tracing::instrument(skip_all)]
    async fn get_dashboard(
        &self,
        request: Request<GetDashboardRequest>,
    ) -> Result<Response<GetDashboardResponse>, Status> {
        match Caller::of(&request)? {
            Caller::Analyst(_) => {}
            other => {
                return Err(Status::permission_denied(format!(
                    "{} may not do this; analysts only",
                    other.role()
                )));
            }
        }
        let (from, to, width) = convert::get_dashboard(request.get_ref())?;
        Ok(Response::new(self.reads.dashboard(from, to, width).await?))
    }
}
