// Named places in Seoul to pick from instead of typing coordinates, and the
// labels of the API's enums.

import { create } from "@bufbuild/protobuf";
import { CallStatus, CancelReason } from "./gen/taxi/call/v1/call_pb";
import { type LatLng, LatLngSchema, TaxiType } from "./gen/taxi/common/v1/common_pb";

export interface Place {
  id: string;
  name: string;
  latitude: number;
  longitude: number;
}

export const PLACES: readonly Place[] = [
  { id: "seoul-station", name: "Seoul Station", latitude: 37.5547, longitude: 126.9707 },
  { id: "gangnam-station", name: "Gangnam Station", latitude: 37.4979, longitude: 127.0276 },
  { id: "myeongdong", name: "Myeongdong", latitude: 37.5609, longitude: 126.9863 },
  { id: "hongik-univ", name: "Hongik Univ. Station", latitude: 37.5572, longitude: 126.9245 },
  { id: "yeouido", name: "Yeouido Park", latitude: 37.5259, longitude: 126.9226 },
  { id: "itaewon", name: "Itaewon", latitude: 37.5345, longitude: 126.9946 },
  { id: "jamsil", name: "Jamsil (Lotte World Tower)", latitude: 37.5126, longitude: 127.1025 },
  { id: "gimpo-airport", name: "Gimpo Airport", latitude: 37.5587, longitude: 126.7945 },
];

export function placeById(id: string): Place | undefined {
  return PLACES.find((p) => p.id === id);
}

export function latLng(latitude: number, longitude: number): LatLng {
  return create(LatLngSchema, { latitude, longitude });
}

/** A place's name when the point is (almost exactly) one of ours, else the coordinates. */
export function describePoint(point: LatLng | undefined): string {
  if (!point) return "?";
  const place = PLACES.find(
    (p) => Math.abs(p.latitude - point.latitude) < 1e-4 && Math.abs(p.longitude - point.longitude) < 1e-4,
  );
  return place ? place.name : `${point.latitude.toFixed(4)}, ${point.longitude.toFixed(4)}`;
}

export const TAXI_TYPES: readonly (readonly [TaxiType, string])[] = [
  [TaxiType.NORMAL, "Normal"],
  [TaxiType.PREMIUM, "Premium"],
  [TaxiType.VAN, "Van"],
];

export function taxiTypeName(type: TaxiType): string {
  return TAXI_TYPES.find(([t]) => t === type)?.[1] ?? "Unknown";
}

/** The API's status name, as the tests and the people reading it expect. */
export function statusName(status: CallStatus): string {
  return CallStatus[status] ?? "UNKNOWN";
}

export function statusText(status: CallStatus): string {
  switch (status) {
    case CallStatus.REQUESTED:
      return "Looking for a driver";
    case CallStatus.ACCEPTED:
      return "Driver on the way";
    case CallStatus.IN_TRIP:
      return "On the trip";
    case CallStatus.COMPLETED:
      return "Arrived";
    case CallStatus.CANCELED:
      return "Canceled";
    default:
      return "";
  }
}

export function cancelReasonText(reason: CancelReason): string {
  switch (reason) {
    case CancelReason.CUSTOMER:
      return "canceled by the customer";
    case CancelReason.EXPIRED:
      return "no driver accepted in time";
    case CancelReason.PAYMENT_DECLINED:
      return "the card was declined";
    default:
      return "";
  }
}

export function isTerminal(status: CallStatus): boolean {
  return status === CallStatus.COMPLETED || status === CallStatus.CANCELED;
}
